"""Unit tests of the generator hooks' file operations (hooks/template_files.py)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import template_files
from cookiecutter.environment import StrictEnvironment
from jinja2 import TemplateError

TEMPLATE = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
# One lock per model framework (uv.<framework>.lock); the hook keeps the chosen one as uv.lock.
TEMPLATE_LOCKS = [
    PROJECT_TEMPLATE / template_files.variant_path(template_files.LOCK_FILE, framework)
    for framework in template_files.VARIANT_CHOICES["model_framework"]
]
VERBATIM = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_copy_without_render"]
# Answers unlike the defaults, so that a placeholder left unfilled or filled wrongly shows.
ANSWERS: dict[str, Any] = {
    "project_slug": "churn-radar",
    "package_name": "churn_model",
    "python_version": "3.12",
    "s3_bucket": "acme-ml-artifacts",
}


def copied_verbatim(pattern: str) -> list[str]:
    """Template files cookiecutter copies for the pattern (it matches paths with fnmatch too)."""
    return [
        relative
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if path.is_file()
        and fnmatch.fnmatch(relative := str(path.relative_to(PROJECT_TEMPLATE)), pattern)
    ]


@pytest.mark.parametrize("pattern", VERBATIM)
def test_verbatim_copies_filled_by_the_hook_equal_what_jinja_renders(pattern: str) -> None:
    """Copying a file and filling its placeholders gives, byte for byte, Jinja's rendering.

    A file that needs more than bare ``{{ cookiecutter.<name> }}`` placeholders (a condition, a
    filter, a loop) must leave cookiecutter.json's _copy_without_render.
    """
    files = copied_verbatim(pattern)
    assert files, f"_copy_without_render pattern {pattern!r} matches no file"
    environment = StrictEnvironment(keep_trailing_newline=True)
    for relative in files:
        content = (PROJECT_TEMPLATE / relative).read_bytes()
        try:
            rendered = environment.from_string(content.decode()).render(cookiecutter=ANSWERS)
        except TemplateError as error:
            pytest.fail(f"{relative} is copied verbatim but needs Jinja ({error})")
        filled = template_files.fill_text(content, ANSWERS)
        assert filled == rendered.encode(), f"{relative}: filling differs from rendering"


@pytest.mark.parametrize("template_lock", TEMPLATE_LOCKS, ids=lambda path: path.name)
def test_template_lock_holds_the_project_name_placeholder_once(template_lock: Path) -> None:
    lock = template_lock.read_text()
    assert lock.count(template_files.LOCK_NAME_PLACEHOLDER) == 1
    assert "{{" not in lock.replace(template_files.LOCK_NAME_PLACEHOLDER, "")


def test_fill_answers_fills_every_placeholder_and_keeps_every_other_byte(tmp_path: Path) -> None:
    original = TEMPLATE_LOCKS[0].read_bytes()
    (tmp_path / "uv.lock").write_bytes(original)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "from {{ cookiecutter.package_name }} import data  # {{ cookiecutter.package_name }}\n"
    )
    (tmp_path / "plain.txt").write_text("no placeholder {{ here }}\n")

    assert template_files.fill_answers(tmp_path, ANSWERS) == ["tests/test_x.py", "uv.lock"]

    filled = (tmp_path / "uv.lock").read_bytes()
    assert b'name = "churn-radar"' in filled
    assert filled.replace(b"churn-radar", template_files.LOCK_NAME_PLACEHOLDER.encode()) == original
    assert (tmp_path / "tests" / "test_x.py").read_text() == (
        "from churn_model import data  # churn_model\n"
    )
    assert (tmp_path / "plain.txt").read_text() == "no placeholder {{ here }}\n"


@pytest.mark.parametrize("answers", [{}, {"package_name": {"not": "text"}}])
def test_a_placeholder_without_a_text_answer_fails_loudly(answers: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\{\{ cookiecutter.package_name \}\} names no text"):
        template_files.fill_text(b"import {{ cookiecutter.package_name }}\n", answers)


def test_a_mode_variant_replaces_the_plain_file_and_shared_paths_stay(tmp_path: Path) -> None:
    """``x.serverless.json`` becomes ``x.json``; a path of several modes survives any of them."""
    (tmp_path / "infrastructure").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "infrastructure" / "staging-config.json").write_text("realtime")
    (tmp_path / "infrastructure" / "staging-config.serverless.json").write_text("serverless")
    for relative in (*template_files.ENDPOINT_PATHS, "tests/test_deploy_realtime.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("")
    answers = {
        "problem_type": "classification",
        "model_framework": "scikit-learn",
        "inference_mode": "serverless",
    }
    removed = template_files.prune(tmp_path, answers)
    assert (tmp_path / "infrastructure" / "staging-config.json").read_text() == "serverless"
    assert not (tmp_path / "infrastructure" / "staging-config.serverless.json").exists()
    assert all((tmp_path / relative).exists() for relative in template_files.ENDPOINT_PATHS)
    assert "tests/test_deploy_realtime.py" in removed
