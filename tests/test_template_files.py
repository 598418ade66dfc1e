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

import local_extensions

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


def _rendered_strings() -> list[str]:
    """What cookiecutter renders with ``from_string``: each path under the template as it walks
    them, each answer, and strings that must go through Jinja."""
    paths = [
        str(path.relative_to(TEMPLATE))
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if "__pycache__" not in path.parts
    ]
    answers = [v for v in json.loads((TEMPLATE / "cookiecutter.json").read_text()).values()]
    odd = ["a\r\nb", "{", "{{ 1 }}", "{% if true %}x{% endif %}", "{# c #}", "%}", "#}", "", "\n"]
    return paths + [v for v in answers if isinstance(v, str)] + odd


@pytest.mark.parametrize("text", _rendered_strings())
def test_literal_strings_render_exactly_what_jinja_renders(text: str) -> None:
    plain = StrictEnvironment(keep_trailing_newline=True)
    fast = StrictEnvironment(
        keep_trailing_newline=True,
        context={
            "cookiecutter": {
                "_extensions": [
                    "local_extensions.CompiledTemplateCache",
                    "local_extensions.LiteralStrings",
                ]
            }
        },
    )
    assert isinstance(fast.from_string(text), local_extensions.LiteralTemplate) == (
        local_extensions.is_literal(plain, text)
    )
    defaults = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    answers = {k: v for k, v in defaults.items() if isinstance(v, str)} | ANSWERS
    try:
        expected = plain.from_string(text).render(cookiecutter=answers)
    except TemplateError:
        with pytest.raises(TemplateError):
            fast.from_string(text).render(cookiecutter=answers)
        return
    assert fast.from_string(text).render(cookiecutter=answers) == expected
    assert fast.from_string(text).render(cookiecutter=answers) == expected  # from the cache


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def test_a_render_is_byte_identical_without_the_speed_extensions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """local_extensions changes how fast a render is, never what it writes: a render with them
    (cache cold or warm) equals one without them, and the warm render used cached code."""
    from cookiecutter.main import cookiecutter

    monkeypatch.setenv("HOME", str(tmp_path))  # cookiecutter's replay files stay out of ~
    loaded: list[str] = []
    for extension in (local_extensions.LiteralStrings, local_extensions.CompiledTemplateCache):
        original = extension.__init__

        def counted(self: Any, environment: Any, original: Any = original) -> None:
            loaded.append(type(self).__name__)
            original(self, environment)

        monkeypatch.setattr(extension, "__init__", counted)
    hits: list[str] = []
    load = local_extensions._SettingsBytecodeCache.load_bytecode

    def counted_load(self: Any, bucket: Any) -> None:
        load(self, bucket)
        if bucket.code is not None:
            hits.append(bucket.key)

    monkeypatch.setattr(local_extensions._SettingsBytecodeCache, "load_bytecode", counted_load)
    trees = []
    for name in ("first", "warm"):
        hits.clear()
        trees.append(
            _tree(Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(tmp_path / name))))
        )
    assert {"LiteralStrings", "CompiledTemplateCache"} <= set(loaded), "not in _extensions"
    assert len(hits) >= 10, "the warm render compiled its files again"
    for extension in (local_extensions.LiteralStrings, local_extensions.CompiledTemplateCache):
        monkeypatch.setattr(extension, "__init__", lambda self, environment: None)
    without = _tree(
        Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(tmp_path / "b")))
    )
    assert trees[0] == without
    assert trees[1] == without
    assert len(without) > 50


def _cached_environment(template: Path, cache: Path, **settings: Any) -> Any:
    from jinja2 import FileSystemLoader

    environment = StrictEnvironment(loader=FileSystemLoader(str(template)), **settings)
    environment.bytecode_cache = local_extensions._SettingsBytecodeCache(str(cache))
    return environment


def test_compiled_template_cache_recompiles_what_changed(tmp_path: Path) -> None:
    """Cached code is used only for the same source and the same compile settings."""
    (tmp_path / "t").mkdir()
    page = tmp_path / "t" / "page.txt"
    page.write_text("{{ 1 + 1 }}\n{% if true %}\nyes\n{% endif %}\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert _cached_environment(page.parent, cache).get_template("page.txt").render() == "2\n\nyes\n"
    page.write_text("{{ 2 + 2 }}\n")
    assert _cached_environment(page.parent, cache).get_template("page.txt").render() == "4"
    page.write_text("{{ 1 + 1 }}\n{% if true %}\nyes\n{% endif %}\n")
    trimmed = _cached_environment(page.parent, cache, trim_blocks=True)
    assert trimmed.get_template("page.txt").render() == "2\nyes\n"
    assert len(list(cache.iterdir())) == 2  # one folder per compile settings


def test_a_cache_that_cannot_be_written_is_only_a_miss(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "page.txt").write_text("{{ 6 * 7 }}")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    environment = _cached_environment(tmp_path / "t", not_a_folder)
    assert environment.get_template("page.txt").render() == "42"


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
