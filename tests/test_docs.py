"""The user guide (docs/, mkdocs) builds strictly, and the READMEs stay short guides to it."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

from .conftest import TEMPLATE

DOCS = TEMPLATE / "docs"
RENDERED_README = TEMPLATE / "{{cookiecutter.project_slug}}" / "README.md"
TEMPLATE_README_MAX_LINES = 300
RENDERED_README_MAX_LINES = 200
# The README's only options: what each of them changes is a sentence or a table row.
README_OPTIONS = ("inference_mode", "ci_system", "model_framework")
# The longest standards the README prints: every subscriber and a budget.
LONGEST_STANDARDS: dict[str, Any] = {
    "budget": {"monthly_usd": 250},
    "notifications": {
        "emails": [f"person-{n}@example.com" for n in range(20)],
        "chatbot_slack": {"workspace_id": "T0123456789", "channel_id": "C0123456789"},
    },
}


def test_the_user_guide_builds_strictly(tmp_path: Path) -> None:
    """mkdocs --strict: a broken link or anchor, or a page left out of the nav, fails the build;
    it runs offline (the default theme, no plugin that fetches anything)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "guide" / "deploy" / "index.html").is_file()


def rendered_readmes() -> dict[str, str]:
    """The rendered README for every combination of the options it depends on, with and without
    organisation standards, rendered as cookiecutter renders it."""
    context = generate_context(str(TEMPLATE / "cookiecutter.json"))
    defaults = prompt_for_config(context, no_input=True)
    choices = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    source = RENDERED_README.read_text()
    readmes = {}
    for values in itertools.product(*(choices[option] for option in README_OPTIONS)):
        for name, standards in (("no standards", {}), ("longest standards", LONGEST_STANDARDS)):
            answers = defaults | dict(zip(README_OPTIONS, values, strict=True))
            environment = StrictEnvironment(context={"cookiecutter": answers})
            environment.globals["org_standards"] = standards
            text = environment.from_string(source).render(cookiecutter=answers)
            readmes[f"{'-'.join(values)}, {name}"] = text
    return readmes


def test_every_rendered_readme_is_at_most_200_lines() -> None:
    lengths = {name: len(text.splitlines()) for name, text in rendered_readmes().items()}
    assert max(lengths.values()) <= RENDERED_README_MAX_LINES, lengths


def test_the_matrix_renders_readmes_are_at_most_200_lines(baked_matrix: dict[str, Path]) -> None:
    for name, project in baked_matrix.items():
        lines = len((project / "README.md").read_text().splitlines())
        assert lines <= RENDERED_README_MAX_LINES, (name, lines)


def test_the_template_readme_is_at_most_300_lines() -> None:
    assert len((TEMPLATE / "README.md").read_text().splitlines()) <= TEMPLATE_README_MAX_LINES


def test_every_guide_page_a_readme_names_exists() -> None:
    """The rendered README names pages by their path under docs/ (the project has no copy of the
    site); the template README links them."""
    named = set()
    for text in rendered_readmes().values():
        named |= set(re.findall(r"`((?:guide|admin)/[a-z-]+\.md)(?:#([a-z-]+))?`", text))
    linked = re.findall(r"\]\(docs/([a-z/-]+\.md)\)", (TEMPLATE / "README.md").read_text())
    assert named and linked
    for page, anchor in named:
        assert (DOCS / page).is_file(), page
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (DOCS / page).read_text(), flags=re.MULTILINE)
            assert anchor in {heading.lower().replace(" ", "-") for heading in headings}, anchor
    for page in linked:
        assert (DOCS / page).is_file(), page


GUIDE_FILES = [TEMPLATE / "README.md", RENDERED_README, *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", GUIDE_FILES, ids=lambda page: str(page.relative_to(TEMPLATE)))
def test_no_readme_or_guide_page_carries_a_date_or_a_load_average(page: Path) -> None:
    """Measured figures live in bench/RESULTS.md with how to reproduce them; example output in a
    code block may show what a command prints."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert not re.search(r"\b20[0-9]{2}-[01][0-9]-[0-3][0-9]\b", prose)
    assert "load average" not in prose
