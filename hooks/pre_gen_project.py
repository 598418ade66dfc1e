"""Validate the answers before anything is rendered (rules: hooks/template_rules.py)."""

import json
import sys
from pathlib import Path

ANSWERS = json.loads(r'''{{ cookiecutter | tojson }}''')
{% raw %}
# cookiecutter sets _repo_dir; cruft sets only _template (the path or URL it was given).
for candidate in (ANSWERS.get("_repo_dir"), ANSWERS.get("_template")):
    if candidate and (Path(candidate) / "hooks" / "template_rules.py").is_file():
        sys.path.insert(0, str(Path(candidate) / "hooks"))
        break

import template_files  # noqa: E402
import template_rules  # noqa: E402

try:
    template_rules.validate(ANSWERS)
except template_rules.AnswerError as error:
    if isinstance(ANSWERS.get("project_slug"), str):
        template_files.remove_created_parents_later(Path.cwd(), ANSWERS["project_slug"])
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
{% endraw %}
