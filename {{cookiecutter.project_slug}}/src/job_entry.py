"""Entry file for SageMaker jobs, which run a file, not ``python -m``.

``python job_entry.py <package>.<module> [args...]`` runs ``python -m <package>.<module> [args...]``
with this folder (the uploaded ``src/``) on the path, so the job runs the project's own module.

First it makes the job run the locked libraries: ``requirements.txt`` beside this file is the
runtime export of ``uv.lock``. Every pin the image already satisfies is left alone (no network
needed); when any differs or is missing, ``pip install -r requirements.txt`` installs the locked
versions. A job under network isolation cannot download: it then stops with a message naming the
packages that differ, instead of running on the image's versions.

A job told to log to an MLflow tracking server (``MLFLOW_TRACKING_URI``, set by the pipeline when
the project has one) also needs ``requirements-tracking.txt``, installed the same way; without
that variable it is not even read.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
TRACKING_REQUIREMENTS = Path(__file__).with_name("requirements-tracking.txt")
CANNOT_INSTALL = 3


def unmet(requirements: Path) -> list[str]:
    """The pins of ``requirements`` this interpreter does not satisfy, one line each."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # the image has pip, which carries its own copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]

    missing = []
    for line in requirements.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{requirement.name}: not installed, needs {requirement.specifier}")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            needed = requirement.specifier
            missing.append(f"{requirement.name}: {installed} installed, needs {needed}")
    return missing


def install_locked(requirements: Path = REQUIREMENTS) -> int:
    """0 when the locked libraries are in place (installing them if needed), else an exit code."""
    if not requirements.exists():
        return 0
    missing = unmet(requirements)
    if not missing:
        return 0
    print("installing the locked runtime: " + "; ".join(missing), file=sys.stderr)
    result = subprocess.run(  # noqa: S603 - pip of this interpreter, the shipped file
        [
            *(sys.executable, "-m", "pip", "install", "--no-input"),
            *("--disable-pip-version-check", "--quiet", "-r", str(requirements)),
        ],
        check=False,
    )
    if result.returncode != 0:
        print(
            "error: the image's libraries differ from requirements.txt and pip could not install "
            "the locked versions (a job under network isolation cannot download): "
            + "; ".join(missing),
            file=sys.stderr,
        )
        return CANNOT_INSTALL
    return 0


def needed_requirements(environ: Mapping[str, str]) -> list[Path]:
    """The requirement files this job installs: the runtime, and tracking's when it tracks."""
    tracked = bool(environ.get("MLFLOW_TRACKING_URI"))
    return [REQUIREMENTS, *([TRACKING_REQUIREMENTS] if tracked else [])]


if __name__ == "__main__":
    status = next(
        (code for code in map(install_locked, needed_requirements(os.environ)) if code), 0
    )
    if status:
        sys.exit(status)
    module = sys.argv.pop(1)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
