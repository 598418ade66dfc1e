"""The model's runtime requirements, exported from ``uv.lock``: what every job installs.

``src/requirements.txt`` holds the runtime dependencies (``[project].dependencies`` of
``pyproject.toml``, no tooling groups) pinned to the lock's versions, with environment markers, so
the image's Python (3.12 for the SageMaker scikit-learn image) picks its own lines. Each line
carries the lock's hashes of that version's files (``--hash=sha256:...``, uv's export joined onto
one line per requirement): ``src/job_entry.py`` installs it with ``--require-hashes`` when the
image's libraries differ from it, so pip installs only the files the lock names. It ships with
the job code and, through training, with the model's code (there without hashes: the serving
image's ``pip install . -r requirements.txt`` cannot check hashes beside a folder,
``<package>/model_code.py``).

``src/requirements-tracking.txt`` holds the ``tracking`` group the same way: what an evaluation job
adds when it logs its run to an MLflow tracking server (``job_entry.py`` installs it then only).

    python -m pipelines.requirements          # rewrite both files (make requirements)
    python -m pipelines.requirements --check  # exit 1 when one is stale
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from mlops_platform import WHEELS_FOLDER
from packaging.utils import parse_wheel_filename

PROJECT = Path(__file__).resolve().parent.parent
REQUIREMENTS = PROJECT / "src" / "requirements.txt"
TRACKING_REQUIREMENTS = PROJECT / "src" / "requirements-tracking.txt"
# --no-emit-project: the package is the code.
EXPORT = ["export", "--frozen", "--no-emit-project", "--no-header", "--no-annotate"]
# --no-default-groups: only [project].dependencies; --only-group: that group alone.
SELECTIONS = {"runtime": ["--no-default-groups"], "tracking": ["--only-group", "tracking"]}
HEADER = "# {} requirements exported from uv.lock by `make requirements`; do not edit.\n"


def exported(project: Path = PROJECT, selection: str = "runtime") -> str:
    # `uv run` names its own binary in UV: a bare `uv` may be a pyenv shim that resolves to the
    # project's Python version, where no uv is installed (exit 127).
    uv = os.environ.get("UV") or "uv"
    result = subprocess.run(  # noqa: S603 - fixed uv command
        [uv, *EXPORT, *SELECTIONS[selection]],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return HEADER.format(selection.capitalize()) + by_version(one_line_each(result.stdout))


PLATFORM_WHEEL_PREFIX = f"./src/{WHEELS_FOLDER}/"


def by_version(export: str) -> str:
    """The export with the platform library named by version (``mlops-platform==0.1.0``, hashes
    kept) instead of by its path in the project, and ``--find-links`` to the folder that holds it
    first: pip reads that folder relative to the requirements file, which is where the job code
    (src/ here, the code root in a job) and the model's code/ carry it."""
    lines = []
    found = False
    for line in export.splitlines(keepends=True):
        location, space, rest = line.partition(" ")
        if location.startswith(PLATFORM_WHEEL_PREFIX) and location.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(location.rsplit("/", 1)[1])
            line = f"{name}=={version}{space}{rest}"
            found = True
        lines.append(line)
    return (f"--find-links {WHEELS_FOLDER}\n" if found else "") + "".join(lines)


def one_line_each(export: str) -> str:
    """uv's export with each requirement's continuation lines (its hashes) joined onto it: one
    requirement per line, as pip reads it, and as line-based readers (job_entry.py) expect."""
    return export.replace(" \\\n    ", " ")


def files(project: Path = PROJECT) -> dict[str, Path]:
    """Each exported selection and the file it goes to."""
    return {
        "runtime": project / REQUIREMENTS.relative_to(PROJECT),
        "tracking": project / TRACKING_REQUIREMENTS.relative_to(PROJECT),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    for selection, path in files().items():
        text = exported(selection=selection)
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"{path.name} is stale: run `make requirements`", file=sys.stderr)
                return 1
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
