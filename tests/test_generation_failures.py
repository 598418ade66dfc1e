"""Bad answers through the real cookiecutter CLI: one clear line, nothing left on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import template_files

from .conftest import TEMPLATE, copy_template, run_cookiecutter

CASES = [
    ("project_slug=Bad Slug", "project_slug"),
    ("project_slug=nested/dir", "project_slug"),
    ("project_slug=deeply/nested/dir", "project_slug"),
    ("package_name=os", "package_name"),
    # Computed defaults are reported against the answer typed (package_name comes from the slug).
    ("project_slug=class", "project_slug"),
    ("project_slug=os", "project_slug"),
    ("project_name={{ 7*7 }}", "project_name"),  # renders to '49', whose slug breaks the rule
    # The slug is cut to 32 characters, so the folder name is valid and the name rule answers.
    ("project_name=" + "A" * 256, "project_name"),
    ("project_name=" + "Long name " * 30, "project_name"),
    ("aws_region=mars-north-1", "aws_region"),
    ("s3_bucket=Not_A_Bucket", "s3_bucket"),
    ("author_email=nobody", "author_email"),
    # Cookiecutter renders answers; one that renders to a template marker reaches the hook.
    ('project_name={{ "{{" }} 7 * 7 }}', "project_name"),
    ('extra_tags={"aws:owner": "me"}', "extra_tags.key"),
    # A valid object typed on the command line stays text and would break the render.
    ('extra_tags={"team": "ml"}', "extra_tags"),
    ("cost_centre=cc;rm -rf", "cost_centre"),
]


def wait_until_empty(folder: Path, seconds: float = 10.0) -> list[str]:
    """Cleanup of nested slugs finishes just after cookiecutter exits (see template_files)."""
    deadline = time.monotonic() + seconds
    while True:
        left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.usefixtures("isolated_home")
def test_the_hooks_import_nothing_from_the_temp_folder_they_run_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cookiecutter writes each hook to the temp folder and runs it there, where Python looks for
    imports first: a module anyone left there must not run inside the generator."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    for module in ("json", "pathlib", "re", "subprocess", "template_rules", "template_files"):
        (temp / f"{module}.py").write_text("raise SystemExit('planted module imported')\n")
    monkeypatch.setenv("TMPDIR", str(temp))
    result = run_cookiecutter(tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "planted" not in result.stdout + result.stderr
    assert (tmp_path / "out" / "tumour-classifier" / ".git").is_dir()


@pytest.mark.usefixtures("isolated_home")
def test_the_hooks_find_their_helpers_wherever_the_generator_was_started(tmp_path: Path) -> None:
    """A template named by a path relative to a working directory that neither the shell's PWD,
    the parent process's nor the hook's own (the new project) shares: the hooks still load the
    template's rules (a bad answer gets its one line) and its file helpers (a render has git)."""
    (tmp_path / "start").mkdir()
    (tmp_path / "start" / "template").symlink_to(TEMPLATE, target_is_directory=True)
    generate = (
        "import os, sys; os.chdir(sys.argv[1]); from cookiecutter.main import cookiecutter; "
        "cookiecutter('template', no_input=True, output_dir=sys.argv[2], "
        "extra_context=dict(a.split('=', 1) for a in sys.argv[3:]))"
    )
    for out, answers in (("good", []), ("bad", ["s3_bucket=Bad_Bucket"])):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                generate,
                str(tmp_path / "start"),
                str(tmp_path / out),
                *answers,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PWD": "/"},
            check=False,
        )
        if out == "good":
            assert result.returncode == 0, result.stderr[-2000:]
            assert (tmp_path / "good" / "tumour-classifier" / ".git").is_dir()
        else:
            assert "error: invalid answer for 's3_bucket'" in result.stderr, result.stderr[-2000:]
            assert "ModuleNotFoundError" not in result.stderr


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize(
    ("answer", "field"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)]
)
def test_bad_answer_fails_cleanly(tmp_path: Path, answer: str, field: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run_cookiecutter(out, answer)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert f"invalid answer for '{field}'" in errors[0]
    assert wait_until_empty(out) == []


@pytest.mark.usefixtures("isolated_home")
def test_answer_that_cannot_render_is_refused_by_cookiecutter(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "project_name={{ cookiecutter.undefined }}")
    assert result.returncode != 0
    assert "Unable to render variable 'project_name'" in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("isolated_home")
def test_choice_outside_the_list_is_refused(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "python_version=2.7")
    assert result.returncode != 0
    assert "python_version" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("isolated_home")
def test_existing_unrelated_folders_are_kept(tmp_path: Path) -> None:
    (tmp_path / "nested" / "keep.txt").parent.mkdir()
    (tmp_path / "nested" / "keep.txt").write_text("mine")
    result = run_cookiecutter(tmp_path, "project_slug=nested/dir")
    assert result.returncode != 0
    assert wait_until_empty(tmp_path, seconds=1.0) == ["nested", "nested/keep.txt"]


@pytest.mark.usefixtures("isolated_home")
def test_failing_post_generation_hook_leaves_nothing(tmp_path: Path) -> None:
    """A post-generation failure (here: forced) removes the half-rendered project."""
    template = copy_template(tmp_path / "template")
    hook = template / "hooks" / "post_gen_project.py"
    hook.write_text(
        hook.read_text().replace(
            "template_files.init_git(Path.cwd())", "raise SystemExit('error: forced failure')"
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(template), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "forced failure" in result.stderr
    assert list(out.iterdir()) == []


@pytest.mark.usefixtures("isolated_home")
def test_the_templates_line_comes_first(tmp_path: Path) -> None:
    """What a user sees, stdout and stderr together: our line, then cookiecutter's traceback."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE)]
    result = subprocess.run(
        [*command, "-o", str(tmp_path), "s3_bucket=Bad_Bucket"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert lines[0] == (
        "error: invalid answer for 's3_bucket' = 'Bad_Bucket': S3 bucket name may contain only "
        "lowercase letters, digits, dots and hyphens"
    )
    # Cookiecutter's own report (logger.exception in cookiecutter.hooks) follows.
    assert lines[1] == (
        "ERROR: Stopping generation because pre_gen_project hook script didn't exit successfully"
    )
    assert lines[-1] == "Hook script failed (exit status: 1)"
    guide = (TEMPLATE / "docs" / "admin" / "answers.md").read_text()
    shown = guide.split("<!-- bad-answer-output -->\n```text\n", 1)[1].split("```", 1)[0]
    shown_lines = shown.splitlines()
    assert shown_lines[:2] == lines[:2] and shown_lines[-1] == lines[-1]
    assert sum(line.startswith("Traceback") for line in shown_lines) == 1


@pytest.mark.usefixtures("isolated_home")
def test_answers_are_rendered_by_cookiecutter_before_the_hook(tmp_path: Path) -> None:
    """Why the template-marker rule sees '49': cookiecutter renders every answer first."""
    result = run_cookiecutter(tmp_path, "description={{ 7*7 }}")
    assert result.returncode == 0, result.stderr
    assert 'description = "49"' in (tmp_path / "tumour-classifier" / "pyproject.toml").read_text()


@pytest.mark.usefixtures("isolated_home")
def test_an_empty_folder_that_existed_before_the_run_is_kept(tmp_path: Path) -> None:
    """A refused nested slug removes the folders the run made, not an empty one of the user's."""
    (tmp_path / "pre").mkdir()
    time.sleep(2 * template_files.SAME_RUN_SECONDS)  # the user's folder, made before the run
    result = run_cookiecutter(tmp_path, "project_slug=pre/sub")
    assert result.returncode != 0
    time.sleep(1.0)  # the detached cleanup runs after cookiecutter exits
    assert wait_until_empty(tmp_path, seconds=0) == ["pre"]
    # What the run made is still removed: both levels of a new nested slug.
    result = run_cookiecutter(tmp_path, "project_slug=made/by/run")
    assert result.returncode != 0
    time.sleep(1.0)
    assert wait_until_empty(tmp_path, seconds=0) == ["pre"]
