"""README and user-guide sentences that state facts about the questions and the projects."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import TEMPLATE

CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
QUESTIONS = [key for key in CONTEXT if not key.startswith("_")]


def questions_table() -> list[tuple[str, str]]:
    section = (TEMPLATE / "README.md").read_text().split("## Questions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([^|]*) \|", section, flags=re.MULTILINE)
    return [(name, default.strip()) for name, default in rows]


def test_questions_are_listed_in_the_order_asked() -> None:
    assert [name for name, _ in questions_table()] == QUESTIONS


def test_extra_tags_default_is_shown_in_the_prompt_and_the_readme() -> None:
    default = json.dumps(CONTEXT["extra_tags"])
    assert default in CONTEXT["__prompts__"]["extra_tags"]
    assert dict(questions_table())["extra_tags"] == f"`{default}`"


def test_plain_defaults_in_the_readme_are_the_real_ones() -> None:
    table = dict(questions_table())
    for name in ("project_name", "author_name", "author_email", "organisation", "aws_region"):
        assert table[name] == CONTEXT[name], name
    choices = ("problem_type", "model_framework", "source_control", "ci_system", "inference_mode")
    for name in choices:
        assert table[name] == CONTEXT[name][0], name
    assert table["cost_centre"] == CONTEXT["cost_centre"]
    assert table["license"] == CONTEXT["license"][0]
    assert table["python_version"] == CONTEXT["python_version"][0]


def test_rendered_readme_grammar(baked_matrix: dict[str, Path]) -> None:
    for project in baked_matrix.values():
        text = (project / "README.md").read_text()
        assert "CodeBuild call " not in text
        assert "CodeBuild calls the same targets" in text or (
            "CodeBuild and GitHub Actions call the same targets" in text
        )


FRAMEWORKS_PAGE = TEMPLATE / "docs" / "admin" / "frameworks.md"


def framework_table() -> dict[str, list[str]]:
    """The guide's model-framework table: framework -> its other cells."""
    section = FRAMEWORKS_PAGE.read_text().split("# Model frameworks", 1)[1]
    table = section.split("\n\n", 2)[1]
    rows = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def test_the_framework_table_lists_every_choice_with_what_it_uses() -> None:
    """Each framework's row of the guide's table names the image its jobs and endpoint use (the
    one the rendered pipeline retrieves, at the version pipelines/defaults.json names) and the
    wheels it installs locally at the versions its own lock pins; the README's questions table
    names every framework."""
    import tomllib

    table = framework_table()
    assert list(table) == CONTEXT["model_framework"]
    readme = (TEMPLATE / "README.md").read_text()
    question = re.search(r"^\| `model_framework` \|.*$", readme, flags=re.MULTILINE)
    assert question and all(framework in question.group() for framework in table)
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    pipeline = (project / "pipelines" / "pipeline.py").read_text()
    assert 'framework="sklearn"' in pipeline and "version=settings.sklearn_version" in pipeline
    defaults = (project / "pipelines" / "defaults.json").read_text()
    image = re.search(r'"sklearn_version": "([^"]+)"', defaults)
    image_named = f"SageMaker scikit-learn image ({image.group(1)})" if image else None
    assert image_named and image_named in FRAMEWORKS_PAGE.read_text()
    for framework, (_, on_sagemaker, locally) in table.items():
        assert "SageMaker scikit-learn image" in on_sagemaker, framework
        lock = tomllib.loads((project / f"uv.{framework}.lock").read_text())["package"]
        versions = {package["name"]: package["version"] for package in lock}
        wheels = re.findall(r"`?([a-z][a-z-]*)`? ([0-9]+\.[0-9]+\.[0-9]+)", locally)
        assert wheels, framework
        for name, version in wheels:
            assert versions[name] == version, (framework, name)
