"""Unit tests of the generator hooks' file operations (hooks/template_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import template_files

TEMPLATE_LOCK = Path(__file__).resolve().parent.parent / "{{cookiecutter.project_slug}}" / "uv.lock"


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
