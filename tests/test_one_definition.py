"""Things defined once: the lower-is-better gate metrics live in one JSON file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import org_standards

from .conftest import TEMPLATE

PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
GATE_METRICS = PROJECT / "src" / "{{cookiecutter.package_name}}" / "gate_metrics.json"


def test_lower_is_better_metrics_have_one_definition() -> None:
    defined = frozenset(json.loads(GATE_METRICS.read_text())["lower_is_better"])
    assert defined == org_standards.LOWER_IS_BETTER
    # No Python file of the template or the rendered project spells the set out again.
    name = r"""["'](mse|rmse|mae)["']"""
    spelled_out = re.compile(rf"\{{\s*({name}\s*,\s*){{2}}{name}\s*\}}")
    copies = [
        str(path.relative_to(TEMPLATE))
        for path in sorted(TEMPLATE.rglob("*.py"))
        if not {".venv", "build", ".git"} & set(path.relative_to(TEMPLATE).parts)
        and spelled_out.search(path.read_text())
    ]
    assert copies == []


def test_rendered_modules_read_the_one_definition(baked_matrix: dict[str, Path]) -> None:
    project = next(iter(baked_matrix.values()))
    package = next((project / "src").glob("*/gate_metrics.json")).parent
    for module in (package / "evaluate.py", project / "pipelines" / "settings.py"):
        assert "gate_metrics.json" in module.read_text(), module


def test_the_tag_set_has_one_definition_for_every_stack() -> None:
    """templates/cloudformation.j2 holds it: infrastructure/tags.json (the stack tags) renders it,
    and the few resource-level copies are its ``tags()`` macro; nothing spells a tag out again."""
    tags_file = (PROJECT / "infrastructure" / "tags.json").read_text()
    assert "cfn.organisation_tags" in tags_file
    assert "cost_centre" not in tags_file
    for path in sorted((PROJECT / "infrastructure").glob("*.yaml")):
        text = path.read_text()
        assert "macro tags" not in text, path.name
        assert "Key: sagemaker:project-id" not in text, path.name
        tag_lists = re.findall(r"Tags:(.*)", text)
        assert all(re.fullmatch(r"\{\{ cfn\.tags\((stage=true)?\) \}\}", t) for t in tag_lists), (
            path.name,
            set(tag_lists),
        )
    settings = (PROJECT / "pipelines" / "settings.py").read_text()
    assert "tags.json" in settings
    assert "tags" not in (PROJECT / "pipelines" / "defaults.json").read_text()
