"""Unit tests of the answer rules: every rule fails on a bad value with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import template_rules
from template_rules import AnswerError, validate

DEFAULTS: dict[str, Any] = {
    "project_name": "Tumour Classifier",
    "project_slug": "tumour-classifier",
    "package_name": "tumour_classifier",
    "description": "A model.",
    "author_name": "Team",
    "author_email": "team@example.com",
    "organisation": "example-org",
    "aws_region": "us-east-1",
    "s3_bucket": "example-org-tumour-classifier-ml",
    "problem_type": "classification",
    "model_framework": "scikit-learn",
    "source_control": "github",
    "ci_system": "codepipeline",
    "inference_mode": "realtime",
    "python_version": "3.11",
    "license": "MIT",
    "cost_centre": "cc-0000",
    "extra_tags": {"team": "data-science"},
}

# (field, bad value, words the message must contain)
BAD_ANSWERS: list[tuple[str, Any, str]] = [
    ("project_name", "", "non-empty"),
    ("project_name", "x" * 201, "at most 200"),
    ("project_name", "two\nlines", "single line"),
    ("project_name", "{{ 7 * 7 }}", "template markers"),
    ("project_slug", "Tumour", "lowercase"),
    ("project_slug", "a/b", "lowercase"),
    ("project_slug", "a--b", "single hyphens"),
    ("project_slug", "1abc", "starting with a letter"),
    ("project_slug", "a" * 33, "1-32"),
    ("package_name", "my-package", "identifier"),
    ("package_name", "class", "keyword"),
    ("package_name", "match", "keyword"),
    ("package_name", "json", "standard-library"),
    ("package_name", "pipelines", "shadow a dependency"),
    ("package_name", "sklearn", "shadow a dependency"),
    ("package_name", "xgboost", "shadow a dependency"),
    ("package_name", "lightgbm", "shadow a dependency"),
    ("description", "a\tb", "single line"),
    ("author_name", "   ", "non-empty"),
    ("author_email", "not-an-email", "e-mail"),
    ("organisation", "acme;drop", "tag values"),
    ("aws_region", "us-east-9", "offers SageMaker"),
    ("aws_region", "US-EAST-1", "offers SageMaker"),
    ("s3_bucket", "ab", "3-63"),
    ("s3_bucket", "a" * 64, "3-63"),
    ("s3_bucket", "Upper-Case", "lowercase"),
    ("s3_bucket", "under_score", "lowercase"),
    ("s3_bucket", "-leading", "begin and end"),
    ("s3_bucket", "double..dot", "'..'"),
    ("s3_bucket", "dot.-dash", "'..'"),
    ("s3_bucket", "192.168.5.4", "IP address"),
    ("s3_bucket", "xn--punycode", "xn--"),
    ("s3_bucket", "sthree-bucket", "sthree-"),
    ("s3_bucket", "bucket-s3alias", "reserved suffix"),
    ("s3_bucket", "bucket--ol-s3", "reserved suffix"),
    ("problem_type", "clustering", "one of"),
    ("model_framework", "tensorflow", "one of"),
    ("source_control", "bitbucket", "one of"),
    ("ci_system", "jenkins", "one of"),
    ("inference_mode", "async", "one of"),
    ("python_version", "3.10", "one of"),
    ("license", "GPL", "one of"),
    ("cost_centre", "", "non-empty"),
    ("cost_centre", "cc#1", "tag values"),
    ("extra_tags", "not json", "JSON object"),
    ("extra_tags", ["a"], "JSON object"),
    ("extra_tags", {"aws:reserved": "x"}, "reserved"),
    ("extra_tags", {"bad;key": "x"}, "tag keys"),
    ("extra_tags", {"k": "v" * 257}, "at most"),
    ("extra_tags", {f"k{i}": "v" for i in range(41)}, "at most 40"),
]


def test_defaults_are_valid() -> None:
    validate(DEFAULTS)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    BAD_ANSWERS,
    ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_ANSWERS)],
)
def test_bad_answer_is_named_with_its_rule(field: str, value: Any, words: str) -> None:
    with pytest.raises(AnswerError) as caught:
        validate(DEFAULTS | {field: value})
    message = str(caught.value)
    assert message.startswith(f"invalid answer for '{field}")
    assert words in message
    assert "\n" not in message


def test_every_rule_is_exercised() -> None:
    assert {field for field, _, _ in BAD_ANSWERS} == set(template_rules.RULES)


def test_github_actions_on_codecommit_is_refused_in_one_line() -> None:
    with pytest.raises(AnswerError) as caught:
        validate(DEFAULTS | {"ci_system": "github-actions", "source_control": "codecommit"})
    message = str(caught.value)
    assert message.startswith("invalid answer for 'ci_system'")
    assert "source_control=github" in message and "\n" not in message
    validate(DEFAULTS | {"ci_system": "github-actions", "source_control": "github"})
    validate(DEFAULTS | {"ci_system": "codepipeline", "source_control": "codecommit"})


def test_missing_answer() -> None:
    answers = dict(DEFAULTS)
    del answers["s3_bucket"]
    with pytest.raises(AnswerError, match=r"'s3_bucket'.*missing"):
        validate(answers)


def test_tags_given_as_json_text_are_refused_with_the_way_that_works() -> None:
    """Command-line answers stay text, which the templates cannot iterate as tags."""
    with pytest.raises(AnswerError, match="default_context"):
        validate(DEFAULTS | {"extra_tags": json.dumps({"team": "ml", "env": "dev"})})


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(AnswerError) as caught:
        validate(DEFAULTS | {"project_name": "y" * 500})
    assert len(str(caught.value)) < 200


def test_region_snapshot_covers_botocore() -> None:
    """The offline snapshot (for interpreters without botocore) must not miss a region."""
    known = set(botocore.session.get_session().get_available_regions("sagemaker"))
    assert known <= template_rules.SAGEMAKER_REGIONS_SNAPSHOT


def test_snapshot_region_is_checked_without_importing_botocore() -> None:
    """Importing botocore for its region list cost a third of a second of every default render."""
    script = (
        "import sys, template_rules\n"
        f"template_rules.validate({DEFAULTS!r})\n"
        "assert 'botocore' not in sys.modules, 'botocore was imported'\n"
    )
    hooks = Path(template_rules.__file__).parent
    subprocess.run([sys.executable, "-c", script], cwd=hooks, check=True)


def test_region_newer_than_the_snapshot_is_asked_of_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    newer = "xx-future-1"
    monkeypatch.setattr(
        template_rules, "sagemaker_regions", lambda: frozenset({newer, "us-east-1"})
    )
    validate(DEFAULTS | {"aws_region": newer})
    with pytest.raises(AnswerError, match="offers SageMaker"):
        validate(DEFAULTS | {"aws_region": "xx-past-1"})


LONG_ORG = "o" * 60
# Answers as cookiecutter computes them from what the user typed -> the field the message names.
TYPED_VS_COMPUTED: list[tuple[dict[str, Any], str, str]] = [
    ({"project_slug": "class", "package_name": "class"}, "project_slug", "keyword"),
    ({"project_slug": "os", "package_name": "os"}, "project_slug", "standard-library"),
    # project_name={{ 7*7 }} renders to '49' before the hook; its slug '49' breaks the slug rule.
    ({"project_name": "49", "project_slug": "49", "package_name": "49"}, "project_name", "letter"),
    (
        {"organisation": LONG_ORG, "s3_bucket": f"{LONG_ORG}-tumour-classifier-ml"},
        "organisation",
        "3-63",
    ),
    # Typed by the user: named as typed.
    ({"package_name": "class"}, "package_name", "keyword"),
    ({"project_slug": "1abc", "package_name": "1abc"}, "project_slug", "letter"),
]


@pytest.mark.parametrize(("answers", "field", "words"), TYPED_VS_COMPUTED)
def test_a_broken_computed_default_names_the_field_typed(
    answers: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(AnswerError) as caught:
        validate(DEFAULTS | answers)
    message = str(caught.value)
    assert message.startswith(f"invalid answer for '{field}'"), message
    assert words in message and "\n" not in message


def test_slug_length_is_one_number_in_rules_and_cookiecutter_json() -> None:
    """cookiecutter.json truncates the computed slug to the length the slug rule allows."""
    context = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    assert f"slugify(max_length={template_rules.SLUG_MAX})" in context["project_slug"]
