"""Refresh the rendered project's ``uv.lock`` after changing its dependencies.

Renders the default project, runs ``uv lock`` in it, and stores the lock back in the template with
the project's name replaced by its cookiecutter variable, and the runtime requirements exported
from it (``src/requirements.txt``, what the SageMaker jobs install). The dependency set does not
vary with the options and the lock is universal across the supported Pythons, so one lock serves
every rendering.
Run: ``uv run python tools/lock_rendered_project.py [--upgrade]``.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))
from template_files import LOCK_FILE, LOCK_NAME_PLACEHOLDER  # noqa: E402

TEMPLATE_LOCK = ROOT / "{{cookiecutter.project_slug}}" / LOCK_FILE
TEMPLATE_SOURCE = ROOT / "{{cookiecutter.project_slug}}"
PLACEHOLDER = LOCK_NAME_PLACEHOLDER


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp, accept_hooks=False))
        (project / "uv.lock").unlink(missing_ok=True)
        if TEMPLATE_LOCK.exists():  # keep versions stable unless --upgrade
            (project / "uv.lock").write_text(
                TEMPLATE_LOCK.read_text().replace(PLACEHOLDER, project.name)
            )
        subprocess.run(["uv", "lock", *sys.argv[1:]], cwd=project, check=True)  # noqa: S603, S607
        lock = (project / "uv.lock").read_text()
        # The requirements jobs install (runtime, tracking), exported by the project's own module.
        exporter = runpy.run_path(str(project / "pipelines" / "requirements.py"))
        requirements = {
            path.relative_to(project): exporter["exported"](project, selection)
            for selection, path in exporter["files"](project).items()
        }
    marker = f'name = "{project.name}"'
    if lock.count(marker) != 1 or "{{" in lock or "{%" in lock:
        raise SystemExit("unexpected lock layout; refusing to write it")
    TEMPLATE_LOCK.write_text(lock.replace(marker, f'name = "{PLACEHOLDER}"'))
    print(f"wrote {TEMPLATE_LOCK.relative_to(ROOT)}")
    for relative, text in requirements.items():
        if "{{" in text or project.name in text:
            raise SystemExit("unexpected requirements export; refusing to write it")
        (TEMPLATE_SOURCE / relative).write_text(text)
        print(f"wrote {(TEMPLATE_SOURCE / relative).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
