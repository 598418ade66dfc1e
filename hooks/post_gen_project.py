"""Drop files of options not chosen and initialise git (logic: hooks/template_files.py)."""

import os
import sys

# Nothing is imported from the temp folder this copy runs from (why: pre_gen_project.py).
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import json  # noqa: E402
from pathlib import Path  # noqa: E402

ANSWERS = json.loads(r'''{{ cookiecutter | tojson }}''')
# Cookiecutter runs this file as a rendered copy in a temp folder; the tested helpers are in the
# template's hooks/ folder, which local_extensions.TemplateFolder names as the file is rendered.
TEMPLATE = Path(json.loads(r'''{{ template_folder() | tojson }}'''))
sys.path.insert(0, str(TEMPLATE / "hooks"))
{% raw %}

import org_standards  # noqa: E402
import template_files  # noqa: E402

template_files.prune(Path.cwd(), ANSWERS)
template_files.fill_answers(Path.cwd(), ANSWERS)
# Already validated by the pre-generation hook; the project applies what the file says.
org_standards.write_into(Path.cwd(), org_standards.load(org_standards.locate(TEMPLATE)))
template_files.init_git(Path.cwd())
{% endraw %}
