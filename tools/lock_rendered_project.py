"""Refresh the rendered project's ``uv.lock`` after changing its dependencies.

The runtime differs by ``model_framework`` (XGBoost or LightGBM adds its wheel), so the template
holds one lock per framework, ``uv.<framework>.lock``, and the requirements exported from it,
``src/requirements.<framework>.txt`` (what the SageMaker jobs install) and
``src/requirements-tracking.<framework>.txt`` (what a job that logs to MLflow adds); the generator
keeps the chosen ones as ``uv.lock`` / ``src/requirements.txt`` / ``src/requirements-tracking.txt``
(hooks/template_files.py). For each framework
this renders the default project, runs ``uv lock`` in it and stores the lock back with the
project's name replaced by its cookiecutter variable. The first framework's lock seeds the others,
so the libraries they share are locked at the same versions. Each lock is universal across the
supported Pythons and platforms, so one lock per framework serves every rendering.
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
PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
sys.path.insert(0, str(ROOT / "hooks"))
from template_files import (  # noqa: E402
    LOCK_FILE,
    LOCK_NAME_PLACEHOLDER,
    REQUIREMENTS_FILE,
    VARIANT_CHOICES,
    variant_path,
)

PLACEHOLDER = LOCK_NAME_PLACEHOLDER
FRAMEWORKS = VARIANT_CHOICES["model_framework"]


def template_lock(framework: str) -> Path:
    return PROJECT_TEMPLATE / variant_path(LOCK_FILE, framework)


def template_requirements(framework: str, relative: str = REQUIREMENTS_FILE) -> Path:
    return PROJECT_TEMPLATE / variant_path(relative, framework)


def lock_framework(framework: str, seed: Path, uv_arguments: list[str]) -> None:
    """Lock the default project rendered with ``framework``, starting from the ``seed`` lock."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(
            cookiecutter(
                str(ROOT),
                no_input=True,
                output_dir=tmp,
                accept_hooks=False,
                extra_context={"model_framework": framework},
            )
        )
        for variant in project.rglob("uv.*.lock"):
            variant.unlink()  # without hooks the template's variant files stay; uv reads uv.lock
        if seed.exists():  # keep versions stable unless --upgrade
            (project / LOCK_FILE).write_text(seed.read_text().replace(PLACEHOLDER, project.name))
        # The platform library keeps its version while its wheel changes (a rebuild of the working
        # tree, `make platform-wheel`): uv keeps a locked path wheel's old hash unless told to
        # read it again.
        command = ["uv", "lock", "--upgrade-package", "mlops-platform", *uv_arguments]
        subprocess.run(command, cwd=project, check=True)  # noqa: S603 - fixed uv command
        lock = (project / LOCK_FILE).read_text()
        # The requirements jobs install (runtime, tracking), exported by the project's own module.
        exporter = runpy.run_path(str(project / "pipelines" / "requirements.py"))
        requirements = {
            str(path.relative_to(project)): exporter["exported"](project, selection)
            for selection, path in exporter["files"](project).items()
        }
    marker = f'name = "{project.name}"'
    if lock.count(marker) != 1 or "{{" in lock or "{%" in lock:
        raise SystemExit("unexpected lock layout; refusing to write it")
    target = template_lock(framework)
    target.write_text(lock.replace(marker, f'name = "{PLACEHOLDER}"'))
    print(f"wrote {target.relative_to(ROOT)}")
    for relative, text in requirements.items():
        if "{{" in text or project.name in text:
            raise SystemExit("unexpected requirements export; refusing to write it")
        target = template_requirements(framework, relative)
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")


def main() -> None:
    first, *others = FRAMEWORKS
    lock_framework(first, template_lock(first), sys.argv[1:])
    for framework in others:
        # Seeded by the first framework's fresh lock: shared libraries at the same versions.
        lock_framework(framework, template_lock(first), [])


if __name__ == "__main__":
    main()
