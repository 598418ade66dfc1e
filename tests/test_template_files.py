"""Unit tests of the generator hooks' file operations (hooks/template_files.py)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import template_files
from cookiecutter.environment import StrictEnvironment
from jinja2 import TemplateError

TEMPLATE = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
TEMPLATE_LOCK = PROJECT_TEMPLATE / template_files.LOCK_FILE
VERBATIM = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_copy_without_render"]


def copied_verbatim(pattern: str) -> list[str]:
    """Template files cookiecutter copies for the pattern (it matches paths with fnmatch too)."""
    return [
        relative
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if path.is_file()
        and fnmatch.fnmatch(relative := str(path.relative_to(PROJECT_TEMPLATE)), pattern)
    ]


@pytest.mark.parametrize("pattern", VERBATIM)
def test_files_copied_verbatim_render_to_themselves(pattern: str) -> None:
    """Copying the files that hold no template text, instead of rendering them, changes no byte.

    A file that gains a template variable must leave cookiecutter.json's _copy_without_render.
    """
    files = copied_verbatim(pattern)
    assert files, f"_copy_without_render pattern {pattern!r} matches no file"
    environment = StrictEnvironment(keep_trailing_newline=True)
    for relative in files:
        if relative == template_files.LOCK_FILE:
            continue  # its one placeholder is filled by the post-generation hook (below)
        text = (PROJECT_TEMPLATE / relative).read_text()
        try:
            rendered = environment.from_string(text).render(cookiecutter={})
        except TemplateError as error:
            pytest.fail(f"{relative} is copied verbatim but is a template ({error})")
        assert rendered == text, f"{relative} is copied verbatim but rendering would change it"


def test_template_lock_holds_the_name_placeholder_once_and_nothing_else_of_jinja() -> None:
    """uv.lock is copied verbatim, so the placeholder is the only template text it may carry."""
    lock = TEMPLATE_LOCK.read_text()
    assert lock.count(template_files.LOCK_NAME_PLACEHOLDER) == 1
    rest = lock.replace(template_files.LOCK_NAME_PLACEHOLDER, "")
    assert not any(marker in rest for marker in ("{{", "{%", "{#"))


def test_fill_lock_writes_the_project_name_and_keeps_every_other_byte(tmp_path: Path) -> None:
    original = TEMPLATE_LOCK.read_bytes()
    (tmp_path / "uv.lock").write_bytes(original)
    template_files.fill_lock(tmp_path, "churn-radar")
    filled = (tmp_path / "uv.lock").read_bytes()
    assert b'name = "churn-radar"' in filled
    assert filled.replace(b"churn-radar", template_files.LOCK_NAME_PLACEHOLDER.encode()) == original


@pytest.mark.parametrize("times", [0, 2])
def test_fill_lock_refuses_a_lock_without_exactly_one_placeholder(
    tmp_path: Path, times: int
) -> None:
    (tmp_path / "uv.lock").write_text(
        "version = 1\n" + f'name = "{template_files.LOCK_NAME_PLACEHOLDER}"\n' * times
    )
    with pytest.raises(RuntimeError, match="placeholder exactly once"):
        template_files.fill_lock(tmp_path, "churn-radar")
