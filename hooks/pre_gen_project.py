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
import template_rules  # noqa: E402

try:
    template_rules.validate(ANSWERS)
    standards_file = org_standards.locate(Path(sys.path[0]).parent)
    org_standards.check(org_standards.load(standards_file), ANSWERS)
except (template_rules.AnswerError, org_standards.StandardsError) as error:
    if isinstance(ANSWERS.get("project_slug"), str):
        import template_files  # only on failure: its subprocess and shutil imports cost every render

        template_files.remove_created_parents_later(Path.cwd(), ANSWERS["project_slug"])
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
{% endraw %}
