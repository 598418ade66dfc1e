"""File operations of the generator hooks: pruning unchosen option files, cleaning up on failure.

Kept apart from the hooks (which cookiecutter renders and runs as throw-away scripts) so that the
logic is importable and unit-tested.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Files that exist in one variant per value of a choice carry the value as an infix:
# ``dataset.classification.csv`` is kept as ``dataset.csv`` when problem_type == classification.
# The model framework's variants (its estimator module, its lock and the runtime requirements
# exported from that lock) keep the other framework's code and libraries out of the project.
# A variant also replaces a plain file of its name: ``staging-config.serverless.json`` becomes
# ``staging-config.json`` for inference_mode == serverless (realtime keeps the plain one).
VARIANT_CHOICES: dict[str, tuple[str, ...]] = {
    "problem_type": ("classification", "regression"),
    "model_framework": ("scikit-learn", "xgboost", "lightgbm"),
    "inference_mode": ("serverless", "batch"),
}

# Where the approved model runs: the files each inference mode has (a path of several modes is
# kept when any of them is chosen).
# infrastructure/endpoint.yaml is every mode's stage stack (batch: no endpoint in it).
ENDPOINT_PATHS = (
    "pipelines/endpoint_test.py",
    "buildspec-test.yml",
    "buildspec-verify.yml",
    "tests/test_endpoint_smoke.py",
)
# Paths (relative to the project) that exist only when a choice has a given value.
OPTION_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ci_system", "codepipeline"): ("buildspec.yml",),
    ("ci_system", "github-actions"): (".github",),
    ("license", "Proprietary"): (),
    ("inference_mode", "realtime"): (
        *ENDPOINT_PATHS,
        "tests/test_deploy_realtime.py",
        "tests/test_drift_alarms.py",
        "tests/test_rollout.py",
        "tests/test_champion_challenger.py",
        "tests/test_monitoring_job.py",
    ),
    ("inference_mode", "serverless"): (*ENDPOINT_PATHS, "tests/test_deploy_serverless.py"),
    ("inference_mode", "batch"): (
        "tests/test_deploy_batch.py",
        "tests/test_drift_alarms.py",
        "tests/test_monitoring_job.py",
    ),
}
LICENSE_FILE_ABSENT_FOR = ("Proprietary",)
# Files without template logic are copied verbatim (cookiecutter.json's ``_copy_without_render``):
# Jinja compiling them was most of a render's time (the 1.4 MB uv.lock alone a tenth of a second).
# Those that need answers hold bare ``{{ cookiecutter.<name> }}`` placeholders, which
# :func:`fill_answers` writes in; tests/test_template_files.py checks that the result is what
# Jinja would have rendered.
ANSWER_PLACEHOLDER = re.compile(rb"\{\{ cookiecutter\.(\w+) \}\}")
LOCK_FILE = "uv.lock"
LOCK_NAME_PLACEHOLDER = "{{ cookiecutter.project_slug }}"
REQUIREMENTS_FILE = "src/requirements.txt"


def variant_path(relative: str, choice_value: str) -> str:
    """The template's name of a variant file: ``uv.lock`` of xgboost is ``uv.xgboost.lock``."""
    path = Path(relative)
    return str(path.with_name(f"{path.stem}.{choice_value}{path.suffix}"))


def prune(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """Delete files of options not chosen and settle variant files; return what was removed."""
    removed: list[str] = []
    kept = {
        relative
        for (choice, value), paths in OPTION_PATHS.items()
        if answers.get(choice) == value
        for relative in paths
    }
    for (choice, value), paths in OPTION_PATHS.items():
        if answers.get(choice) == value:
            continue
        for relative in paths:
            if relative in kept:
                continue
            target = project / relative
            if target.is_dir():
                shutil.rmtree(target)
                removed.append(relative)
            elif target.exists():
                target.unlink()
                removed.append(relative)
    if answers.get("license") in LICENSE_FILE_ABSENT_FOR and (project / "LICENSE").exists():
        (project / "LICENSE").unlink()
        removed.append("LICENSE")
    for choice, values in VARIANT_CHOICES.items():
        chosen = answers[choice]
        for value in values:
            for path in sorted(project.rglob(f"*.{value}.*")):
                if value == chosen:
                    path.rename(path.with_name(path.name.replace(f".{value}.", ".", 1)))
                else:
                    path.unlink()
                    removed.append(str(path.relative_to(project)))
    return removed


def fill_text(content: bytes, answers: Mapping[str, Any]) -> bytes:
    """The content with each answer placeholder replaced by the answer (a string)."""

    def answer(placeholder: re.Match[bytes]) -> bytes:
        name = placeholder.group(1).decode()
        value = answers.get(name)
        if not isinstance(value, str):
            raise ValueError(f"placeholder {placeholder.group().decode()} names no text answer")
        return value.encode()

    return ANSWER_PLACEHOLDER.sub(answer, content)


def fill_answers(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """Fill the answer placeholders of the verbatim copies; return the files filled.

    Every file is looked at: rendered files hold no template markers (tests/test_bake.py checks
    the output), so a placeholder left after generation can only be in a verbatim copy.
    """
    filled: list[str] = []
    for path in sorted(project.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        content = path.read_bytes()
        if b"{{ cookiecutter." in content:
            path.write_bytes(fill_text(content, answers))
            filled.append(str(path.relative_to(project)))
    return filled


# statx(2) on Linux: the only way to a folder's creation time there (os.stat has none).
AT_FDCWD = -100
STATX_BTIME = 0x800
STATX_SIZE = 256  # sizeof(struct statx)
STATX_BTIME_OFFSET = 80  # struct statx: stx_btime {s64 tv_sec; u32 tv_nsec}
# Cookiecutter makes ``a`` and ``a/b`` in one os.makedirs call, microseconds apart; a folder born
# longer than this before the project existed before the run.
SAME_RUN_SECONDS = 0.2


def birth_time(path: Path) -> float | None:
    """When ``path`` was created, or None where the system or filesystem does not record it."""
    birth = getattr(path.stat(), "st_birthtime", None)  # macOS, the BSDs, Windows
    if birth is not None:
        return float(birth)
    if os.name != "posix":
        return None
    statx = getattr(ctypes.CDLL(None, use_errno=True), "statx", None)
    if statx is None:
        return None
    buffer = ctypes.create_string_buffer(STATX_SIZE)
    if statx(AT_FDCWD, os.fsencode(path), 0, STATX_BTIME, buffer) != 0:
        return None
    (mask,) = struct.unpack_from("=I", buffer.raw, 0)
    if not mask & STATX_BTIME:
        return None
    seconds, nanoseconds = struct.unpack_from("=qI", buffer.raw, STATX_BTIME_OFFSET)
    return float(seconds + nanoseconds / 1e9)


def created_parents(project_dir: Path, slug: str) -> list[Path]:
    """Folders cookiecutter made above the project for a slug like ``a/b``, innermost first.

    Only folders born with the project: a folder ``a`` that existed before the run is the user's,
    even if empty. Where creation times are not recorded, none is claimed (an empty folder left
    behind is better than one of the user's removed).
    """
    depth = len(Path(slug).parts) - 1
    if depth <= 0:
        return []
    project_birth = birth_time(project_dir)
    if project_birth is None:
        return []
    made: list[Path] = []
    for parent in project_dir.parents[:depth]:
        born = birth_time(parent)
        if born is None or born < project_birth - SAME_RUN_SECONDS:
            break
        made.append(parent)
    return made


def remove_created_parents_later(project_dir: Path, slug: str) -> None:
    """Remove empty folders a slug like ``a/b`` made above the project, once cookiecutter is done.

    Cookiecutter creates ``a/b`` before the pre-generation hook runs and, on failure, deletes only
    ``a/b`` *after* the hook has exited, so the hook cannot remove ``a`` itself; a detached helper
    waits (at most 10 s) for ``a/b`` to vanish, then removes the empty parents.
    """
    parents = [str(p) for p in created_parents(project_dir, slug)]
    if not parents:
        return
    script = (
        "import os, sys, time\n"
        "project, parents = sys.argv[1], sys.argv[2:]\n"
        "deadline = time.monotonic() + 10\n"
        "while os.path.exists(project) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "for parent in parents:\n"
        "    try:\n"
        "        os.rmdir(parent)\n"
        "    except OSError:\n"
        "        break\n"
    )
    subprocess.Popen(  # noqa: S603 - fixed interpreter and script, paths as arguments
        [sys.executable, "-c", script, str(project_dir), *parents],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# cruft renders the template again into throw-away folders and diffs them (update, diff, check):
# a repository made there would put .git/index and .git/objects into the patch, which then fails
# to apply, and cruft would record the update as done with nothing applied.
CRUFT_RERENDERS = frozenset({"update", "diff", "check"})
GIT_IDENTITY = ["-c", "user.name=cookiecutter", "-c", "user.email=cookiecutter@localhost"]


def cruft_command(pid: int) -> str | None:
    """The cruft subcommand process ``pid`` runs (cookiecutter runs hooks as its children).

    cruft calls cookiecutter as a library, so the hook's parent is the cruft process itself; its
    command line (``/proc`` on Linux, ``ps`` elsewhere) is the one signal cruft gives.
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        try:
            argv = subprocess.run(  # noqa: S603 - fixed command, pid as argument
                ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607 - ps from PATH
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
        except OSError:
            return None
    for index, arg in enumerate(argv):
        if arg == "cruft" or Path(arg).name == "cruft" or arg.endswith("/cruft/__main__.py"):
            words = [a for a in argv[index + 1 :] if not a.startswith("-")]
            return words[0] if words else None
    return None


def commit_cruft_state_later(project: Path, cruft_pid: int) -> None:
    """Add the .cruft.json that `cruft create` writes after the hooks into the first commit.

    cruft writes the file once generation (and this hook) is over, so a detached helper waits (at
    most 60 s) for the cruft process to exit, then amends the initial commit with it; otherwise
    the project starts unclean and `cruft update` refuses to run.
    """
    script = (
        "import os, subprocess, sys, time\n"
        "project, pid, identity = sys.argv[1], int(sys.argv[2]), sys.argv[3:]\n"
        "deadline = time.monotonic() + 60\n"
        "while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "if sys.platform != 'linux':\n"
        "    while time.monotonic() < deadline:\n"
        "        try:\n"
        "            os.kill(pid, 0)\n"
        "        except OSError:\n"
        "            break\n"
        "        time.sleep(0.05)\n"
        # A `git status` the user (or a test) runs meanwhile holds index.lock for a moment, and
        # git then refuses to add or commit: try again rather than leave .cruft.json untracked.
        "commands = (['git', 'add', '.cruft.json'],\n"
        "            ['git', *identity, 'commit', '-q', '--amend', '--no-edit', '--no-verify'])\n"
        "if os.path.exists(os.path.join(project, '.cruft.json')):\n"
        "    for attempt in range(100):\n"
        "        if all(subprocess.run(c, cwd=project).returncode == 0 for c in commands):\n"
        "            break\n"
        "        time.sleep(0.1)\n"
    )
    subprocess.Popen(  # noqa: S603 - fixed interpreter and script, paths as arguments
        [sys.executable, "-c", script, str(project), str(cruft_pid), *GIT_IDENTITY],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def init_git(project: Path, parent_pid: int | None = None) -> None:
    """Initialise the repository with everything rendered as the first commit on main.

    Not in cruft's throw-away renders; under `cruft create`, .cruft.json joins the first commit.
    """
    cruft = cruft_command(os.getppid() if parent_pid is None else parent_pid)
    if cruft in CRUFT_RERENDERS:
        return
    if shutil.which("git") is None:
        print("warning: git not found; run 'git init' yourself", file=sys.stderr)
        return
    commands = [
        # No template directory: git would copy its sample hooks (inactive *.sample files) and
        # description into .git, a third of `git init`'s time; hook installers create .git/hooks.
        ["git", "init", "--quiet", "--template=", "--initial-branch", "main"],
        # Loose objects stored uncompressed for this one command (.git's config is unchanged): a
        # third of the default's time on the 1.4 MB uv.lock, for ~1 MB more in .git until git packs
        # (gc, push), which compresses them as usual.
        ["git", "-c", "core.looseCompression=0", "add", "--all"],
        [
            "git",
            *GIT_IDENTITY,
            "-c",
            "maintenance.auto=false",  # nothing to maintain in one commit; saves a git process
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Initial commit from the MLOps template",
        ],
    ]
    for command in commands:
        subprocess.run(command, cwd=project, check=True)  # noqa: S603 - fixed git commands
    if cruft == "create":
        commit_cruft_state_later(project, os.getppid() if parent_pid is None else parent_pid)
