"""Drop files of options not chosen and initialise git (logic: hooks/template_files.py)."""

import json
import sys
from pathlib import Path

ANSWERS = json.loads(r'''{{ cookiecutter | tojson }}''')
{% raw %}
for candidate in (ANSWERS.get("_repo_dir"), ANSWERS.get("_template")):
    if candidate and (Path(candidate) / "hooks" / "template_files.py").is_file():
        sys.path.insert(0, str(Path(candidate) / "hooks"))
        break

import template_files  # noqa: E402

template_files.prune(Path.cwd(), ANSWERS)
template_files.init_git(Path.cwd())
{% endraw %}
