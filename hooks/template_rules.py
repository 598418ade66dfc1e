"""Validation rules for the generator's answers.

The pre-generation hook calls :func:`validate`; every rule is a small function that raises
:class:`AnswerError` naming the field, the value and the rule, so that a bad answer costs the user
one clear line and nothing on disk. Kept import-light (stdlib, botocore when present) because the
hook runs in whatever Python cookiecutter was installed into.
"""

from __future__ import annotations

import ipaddress
import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

SUPPORTED_PYTHON = ("3.11", "3.12", "3.13")
INFERENCE_MODES = ("realtime", "serverless", "batch")
# SageMaker project names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$. The slug becomes the project,
# pipeline, model package group and repository name, so it obeys the strictest of them.
SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SLUG_MAX = 32
PACKAGE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# Names the rendered project imports or lays out itself; a package of that name would shadow them.
SHADOWED_NAMES = frozenset(
    {
        "pipelines",
        "tests",
        "src",
        "sagemaker",
        "sklearn",
        "xgboost",
        "lightgbm",
        "boto3",
        "botocore",
        "dvc",
        "pandas",
        "numpy",
        "scipy",
        "yaml",
        "moto",
        "pytest",
        "matplotlib",
        "jsonschema",
        "infrastructure",
    }
)
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# AWS tag keys/values: letters, digits, spaces and _ . : / = + - @ (the portable subset).
TAG_CHARS = re.compile(r"^[\w .:/=+\-@]*$")
TAG_KEY_MAX, TAG_VALUE_MAX, EXTRA_TAGS_MAX = 128, 256, 40
TEXT_MAX = 200
# Offline snapshot: answers for the regions it lists without importing botocore, and for all regions
# where botocore is absent (kept complete by tests/test_rules.py's check).
SAGEMAKER_REGIONS_SNAPSHOT = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)


def shown(value: object) -> str:
    """A value as the one-line message quotes it: repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class AnswerError(ValueError):
    """An answer breaks a rule; str() is the one line shown to the user."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(f"invalid answer for '{field}' = {shown(value)}: {rule}")
        self.field = field
        self.value = value
        self.rule = rule


def sagemaker_regions() -> frozenset[str]:
    try:
        import botocore.session
    except ImportError:
        return SAGEMAKER_REGIONS_SNAPSHOT
    regions = botocore.session.get_session().get_available_regions("sagemaker")
    return frozenset(regions) | SAGEMAKER_REGIONS_SNAPSHOT


def check_text(field: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise AnswerError(field, value, "must be a non-empty string")
    if len(value) > TEXT_MAX:
        raise AnswerError(field, value, f"must be at most {TEXT_MAX} characters")
    if any(ch in value for ch in "\r\n\t\x00") or not value.isprintable():
        raise AnswerError(field, value, "must be a single line of printable characters")
    if "{{" in value or "{%" in value or "{#" in value:
        raise AnswerError(field, value, "must not contain template markers ({{, {%, {#)")


def check_slug(field: str, value: Any) -> None:
    check_text(field, value)
    if len(value) > SLUG_MAX or not SLUG_PATTERN.match(value):
        raise AnswerError(
            field,
            value,
            f"must be 1-{SLUG_MAX} lowercase letters, digits and single hyphens, starting with a "
            "letter (SageMaker project naming)",
        )


def check_package(field: str, value: Any) -> None:
    check_text(field, value)
    if not PACKAGE_PATTERN.match(value) or not value.isidentifier():
        raise AnswerError(field, value, "must be a lowercase Python identifier ([a-z][a-z0-9_]*)")
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise AnswerError(field, value, "must not be a Python keyword")
    if value in sys.stdlib_module_names:
        raise AnswerError(field, value, "must not shadow a standard-library module")
    if value in SHADOWED_NAMES:
        raise AnswerError(field, value, "must not shadow a dependency or a project folder")


def check_email(field: str, value: Any) -> None:
    check_text(field, value)
    if not EMAIL_PATTERN.match(value):
        raise AnswerError(field, value, "must be an e-mail address like team@example.com")


def check_region(field: str, value: Any) -> None:
    check_text(field, value)
    # The snapshot answers for every region it lists without importing botocore (a third of a
    # second of every render); botocore is asked only about a region newer than the snapshot.
    if value not in SAGEMAKER_REGIONS_SNAPSHOT and value not in sagemaker_regions():
        raise AnswerError(field, value, "must be an AWS region that offers SageMaker")


def check_bucket(field: str, value: Any) -> None:
    """S3 general-purpose bucket naming rules (docs: 'Bucket naming rules')."""
    check_text(field, value)
    rules: list[tuple[bool, str]] = [
        (3 <= len(value) <= 63, "must be 3-63 characters long"),
        (
            re.fullmatch(r"[a-z0-9.-]+", value) is not None,
            "may contain only lowercase letters, digits, dots and hyphens",
        ),
        (value[0].isalnum() and value[-1].isalnum(), "must begin and end with a letter or digit"),
        (
            ".." not in value and ".-" not in value and "-." not in value,
            "must not contain '..', '.-' or '-.'",
        ),
        (
            not value.startswith(("xn--", "sthree-", "amzn-s3-demo-")),
            "must not start with xn--, sthree- or amzn-s3-demo-",
        ),
        (
            not value.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")),
            "must not end with a reserved suffix (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)",
        ),
        (not _is_ip_address(value), "must not be formatted as an IP address"),
    ]
    for ok, rule in rules:
        if not ok:
            raise AnswerError(field, value, f"S3 bucket name {rule}")


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_tag_value(field: str, value: Any) -> None:
    check_text(field, value)
    if len(value) > TAG_VALUE_MAX or not TAG_CHARS.match(value):
        raise AnswerError(
            field,
            value,
            f"AWS tag values are at most {TAG_VALUE_MAX} of letters, digits, spaces and _.:/=+-@",
        )


def check_tags(field: str, value: Any) -> None:
    given_as_text = isinstance(value, str)
    if given_as_text:  # the command line (`extra_tags=...`) hands cookiecutter text, not a mapping
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise AnswerError(field, value, "must be a JSON object of tag keys to values") from None
    check_tag_mapping(field, value)
    if given_as_text:
        # The templates iterate the tags as a mapping; cookiecutter keeps command-line answers as
        # text and renders them as such, so a valid object typed there would break the render.
        raise AnswerError(
            field,
            value,
            "cookiecutter keeps command-line answers as text; give extra_tags as a JSON object "
            "in a config file's default_context (--config-file) or at the prompt",
        )


def check_tag_mapping(field: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise AnswerError(field, value, "must be a JSON object of tag keys to values")
    if len(value) > EXTRA_TAGS_MAX:
        raise AnswerError(field, value, f"at most {EXTRA_TAGS_MAX} extra tags (AWS allows 50)")
    for key, tag_value in value.items():
        check_text(f"{field}.key", key)
        if len(key) > TAG_KEY_MAX or not TAG_CHARS.match(key):
            raise AnswerError(
                f"{field}.key",
                key,
                f"AWS tag keys are at most {TAG_KEY_MAX} of letters, digits, spaces and _.:/=+-@",
            )
        if key.lower().startswith("aws:"):
            raise AnswerError(f"{field}.key", key, "the aws: prefix is reserved by AWS")
        check_tag_value(f"{field}.{key}", tag_value)


def one_of(*allowed: str) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if value not in allowed:
            raise AnswerError(field, value, f"must be one of: {', '.join(allowed)}")

    return check


RULES: dict[str, Callable[[str, Any], None]] = {
    "project_name": check_text,
    "project_slug": check_slug,
    "package_name": check_package,
    "description": check_text,
    "author_name": check_text,
    "author_email": check_email,
    "organisation": check_tag_value,
    "aws_region": check_region,
    "s3_bucket": check_bucket,
    "problem_type": one_of("classification", "regression"),
    "model_framework": one_of("scikit-learn", "xgboost", "lightgbm"),
    "source_control": one_of("github", "codecommit"),
    "ci_system": one_of("codepipeline", "github-actions"),
    "inference_mode": one_of(*INFERENCE_MODES),
    "python_version": one_of(*SUPPORTED_PYTHON),
    "license": one_of("Apache-2.0", "MIT", "Proprietary"),
    "cost_centre": check_tag_value,
    "extra_tags": check_tags,
}


def check_ci_reaches_source(answers: Mapping[str, Any]) -> None:
    """GitHub Actions only runs workflows of a GitHub repository; CodeCommit would never run it."""
    if answers["ci_system"] == "github-actions" and answers["source_control"] != "github":
        raise AnswerError(
            "ci_system",
            answers["ci_system"],
            f"GitHub Actions needs source_control=github (got {answers['source_control']}); "
            "choose ci_system=codepipeline for a CodeCommit repository",
        )


# Rules between answers, checked once every answer is valid on its own.
COMBINATION_RULES: tuple[Callable[[Mapping[str, Any]], None], ...] = (check_ci_reaches_source,)


# Answers whose default is computed from an earlier one (cookiecutter.json): field: (source, what)
DERIVED: dict[str, tuple[str, str]] = {
    "project_slug": ("project_name", "the repository name"),
    "package_name": ("project_slug", "the package name"),
    "s3_bucket": ("organisation", "the bucket name"),
}


def derived_default(field: str, answers: Mapping[str, Any]) -> str | None:
    """What cookiecutter.json computes for ``field`` from earlier answers (None: cannot tell)."""
    try:
        from slugify import slugify  # python-slugify: cookiecutter's slugify filter calls it
    except ImportError:
        return None
    if field == "project_slug":
        return str(slugify(str(answers["project_name"]), max_length=SLUG_MAX)) or "ml-project"
    if field == "package_name":
        return str(answers["project_slug"]).replace("-", "_")
    if field == "s3_bucket":
        return f"{slugify(str(answers['organisation']))}-{answers['project_slug']}-ml"
    return None


def blame_typed_answer(error: AnswerError, answers: Mapping[str, Any]) -> AnswerError:
    """Report a broken default against the answer the user typed that it was computed from.

    ``project_slug=class`` makes ``package_name`` 'class'; the user should read about
    project_slug, the field they typed. An answer equal to its computed default is taken as not
    typed (typing the default itself changes nothing the user can act on differently).
    """
    field, value, rule = error.field, error.value, error.rule
    while field in DERIVED and value == derived_default(field, answers):
        source, what = DERIVED[field]
        rule = f"{what} computed from it ({field} = {shown(value)}): {rule}"
        field, value = source, answers[source]
    return error if field == error.field else AnswerError(field, value, rule)


def validate(answers: Mapping[str, Any]) -> None:
    """Raise AnswerError for the first answer that breaks its rule."""
    for field, check in RULES.items():
        if field not in answers:
            raise AnswerError(field, None, "is missing from the answers")
        try:
            check(field, answers[field])
        except AnswerError as error:
            raise blame_typed_answer(error, answers) from None
    for rule in COMBINATION_RULES:
        rule(answers)
