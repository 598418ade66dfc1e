"""Validate the answers before anything is rendered (rules: hooks/template_rules.py)."""

import os
import sys

# Cookiecutter runs this file as a rendered copy written to the system temp folder, which Python
# puts first on sys.path: every import below would look there first, so a json.py or re.py that
# anyone left in /tmp would run here, and each import lists the folder (cookiecutter leaves each
# hook copy it writes behind: tens of thousands of files on a machine that renders often, about
# 15 ms per hook). Nothing is imported from that folder.
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
import template_rules  # noqa: E402

try:
    template_rules.validate(ANSWERS)
    standards_file = org_standards.locate(TEMPLATE)
    org_standards.check(org_standards.load(standards_file), ANSWERS)
except (template_rules.AnswerError, org_standards.StandardsError) as error:
    if isinstance(ANSWERS.get("project_slug"), str):
        import template_files  # only on failure: its subprocess and shutil imports cost every render

        template_files.remove_created_parents_later(Path.cwd(), ANSWERS["project_slug"])
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
{% endraw %}
