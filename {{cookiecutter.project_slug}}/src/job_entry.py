"""Entry file for SageMaker jobs, which run a file, not ``python -m``.

``python job_entry.py <package>.<module> [args...]`` runs ``python -m <package>.<module> [args...]``
with this folder (the uploaded ``src/``) on the path, so the job runs the project's own module.

First it makes the job run the locked libraries: ``requirements.txt`` beside this file is the
runtime export of ``uv.lock``, each pin with the lock's hashes. Every pin the image already
satisfies is left alone; when any differs or is missing, pip installs the locked versions with
``--require-hashes`` (only the files the lock names). When the bundle carries ``wheels/`` (the
project's standards require network isolation: ``pipelines/code_bundle.py`` puts there a wheel
for the image of every pin it lacks) pip reads only that folder (``--no-index --find-links``) and
nothing is downloaded; otherwise it downloads from the package index. When pip fails the job stops
with a message naming the packages that differ, instead of running on the image's versions.

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
# The bundle's wheels for the image (only under network isolation): pip's one source then.
WHEELS = Path(__file__).with_name("wheels")
CANNOT_INSTALL = 3


def unmet(requirements: Path) -> list[str]:
    """The pins of ``requirements`` this interpreter does not satisfy, one line each."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # the image has pip, which carries its own copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]

    missing = []
    for line in requirements.read_text().splitlines():
        # One requirement per line, its hashes after it (pipelines/requirements.py).
        line = line.split(" --hash=", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
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


def pip_command(requirements: Path, wheels: Path = WHEELS) -> list[str]:
    """pip of this interpreter installing ``requirements`` by hash, from ``wheels`` alone when the
    bundle has that folder."""
    source = ["--no-index", "--find-links", str(wheels)] if wheels.is_dir() else []
    return [
        *(sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"),
        *("--quiet", *source, "--require-hashes", "-r", str(requirements)),
    ]


def install_locked(requirements: Path = REQUIREMENTS, wheels: Path = WHEELS) -> int:
    """0 when the locked libraries are in place (installing them if needed), else an exit code."""
    if not requirements.exists():
        return 0
    missing = unmet(requirements)
    if not missing:
        return 0
    print("installing the locked runtime: " + "; ".join(missing), file=sys.stderr)
    command = pip_command(requirements, wheels)
    result = subprocess.run(command, check=False)  # noqa: S603 - pip, the shipped file
    if result.returncode != 0:
        where = (
            f"from the bundle's {wheels.name}/ (no index)"
            if wheels.is_dir()
            else "from the package index (a job under network isolation cannot download)"
        )
        print(
            f"error: the image's libraries differ from {requirements.name} and pip could not "
            f"install the locked versions {where}: " + "; ".join(missing),
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
