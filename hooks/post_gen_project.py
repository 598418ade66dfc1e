"""Drop files of options not chosen and initialise git (logic: hooks/template_files.py)."""

import os
import sys

# Nothing is imported from the temp folder this copy runs from (why: pre_gen_project.py).
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import json  # noqa: E402
from pathlib import Path  # noqa: E402

ANSWERS = json.loads(r'''{{ cookiecutter | tojson }}''')
{% raw %}
# Cookiecutter runs this file as a rendered copy in a temp folder, so the tested helpers beside it
# are found through the template folder: _repo_dir (cookiecutter) or _template (cruft), which may be
# relative to where the command was started (the shell's PWD; the parent's cwd on Linux).
for base in (os.environ.get("PWD", ""), f"/proc/{os.getppid()}/cwd", ""):
    for template in (ANSWERS.get("_repo_dir"), ANSWERS.get("_template")):
        helpers = Path(base, template or "\0", "hooks")
        if (helpers / "template_rules.py").is_file():
            sys.path.insert(0, str(helpers.resolve()))
            break
    else:
        continue
    break

import org_standards  # noqa: E402
import template_files  # noqa: E402

template_files.prune(Path.cwd(), ANSWERS)
template_files.fill_answers(Path.cwd(), ANSWERS)
# Already validated by the pre-generation hook; the project applies what the file says.
org_standards.write_into(Path.cwd(), org_standards.load(org_standards.locate(Path(sys.path[0]).parent)))
template_files.init_git(Path.cwd())
{% endraw %}
