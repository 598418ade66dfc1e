"""README sentences that state facts about the questions and the rendered READMEs."""

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
