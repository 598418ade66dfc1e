"""Render the seed code with the organisation's answers and zip it reproducibly."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
# A fixed timestamp: the zip's bytes then depend on the files alone (same input, same bytes).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def template_version(template: Path = TEMPLATE) -> dict[str, str]:
    """The template's ``git describe`` and commit; ``unknown`` outside a git checkout."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(  # noqa: S603 - fixed git command
                ["git", *args],  # noqa: S607 - git from PATH
                cwd=template,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "version": git("describe", "--tags", "--always", "--dirty"),
        "commit": git("rev-parse", "HEAD"),
    }


def resolved_answers(answers: Mapping[str, Any], template: Path = TEMPLATE) -> dict[str, Any]:
    """Every answer as cookiecutter resolves it with ``--no-input`` (derived ones included)."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    # The template's own Jinja extensions (cookiecutter.json _extensions, local_extensions.py)
    # are imported from its folder, as cookiecutter itself does when it renders.
    sys.path.insert(0, str(template))
    try:
        context = generate_context(str(template / "cookiecutter.json"), extra_context=dict(answers))
        return dict(prompt_for_config(context, no_input=True))
    finally:
        sys.path.remove(str(template))


class AnswersError(ValueError):
    """Answers the template refuses; the message is the hook's one line."""


def validate_answers(answers: Mapping[str, Any], template: Path = TEMPLATE) -> None:
    """The pre-generation hook's checks (the template's rules and the organisation's
    standards), without rendering: what a render with these answers would refuse."""
    try:
        resolved = resolved_answers(answers, template)
    except Exception as error:  # cookiecutter's own refusal of the answers, whatever its type
        raise AnswersError(str(error).splitlines()[0] if str(error) else repr(error)) from None
    sys.path.insert(0, str(template / "hooks"))
    try:
        import org_standards
        import template_rules

        try:
            template_rules.validate(resolved)
            standards = org_standards.load(org_standards.locate(template))
            org_standards.check(standards, resolved)
        except (template_rules.AnswerError, org_standards.StandardsError) as error:
            raise AnswersError(str(error)) from None
    finally:
        sys.path.remove(str(template / "hooks"))


def render_seed(answers: Mapping[str, Any], output_dir: Path) -> Path:
    """Render the template non-interactively; the post-generation hook commits every file."""
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=dict(answers),
            output_dir=str(output_dir),
            overwrite_if_exists=False,
        )
    )


def tracked_files(project: Path) -> list[str]:
    """``git ls-files`` of the rendered repository: what a clone of it holds, nothing ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH
        cwd=project,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listing.split("\0") if name)


def zip_files(root: Path, names: list[str]) -> bytes:
    """Zip files with sorted entries, fixed timestamps and normalised permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(names):
            path = root / name
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            executable = path.stat().st_mode & 0o111
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


@dataclass(frozen=True)
class Seed:
    """A fresh render: its zip, the nested templates the product provisions, its answers."""

    slug: str
    zip: bytes
    templates: dict[str, bytes]  # file name -> rendered bytes
    answers: dict[str, Any]
    tags: dict[str, str]  # the organisation's stack tags (the render's infrastructure/tags.json)
    # stage -> its own account (org-standards.json `accounts`); empty: both in the build account
    accounts: dict[str, str]
    # org-standards.json `mlflow_tracking_server_arn`: the organisation's server; None: none named
    mlflow_tracking_server_arn: str | None
    # org-standards.json `vpc`: the build account's subnets and security groups; empty: none
    vpc: dict[str, list[str]]
    # org-standards.json `network_isolation` and `kms_key_arn` (None: no key standard)
    network_isolation: bool = False
    kms_key_arn: str | None = None


# The rendered templates the product provisions as nested stacks (endpoint.yaml is deployed by
# the deploy pipeline from the repository itself).
NESTED_TEMPLATES = ("foundation.yaml", "build-pipeline.yaml", "deploy-pipeline.yaml")


def build_seed(answers: Mapping[str, Any]) -> Seed:
    """Render into a temporary folder; collect the seed zip and the nested templates."""
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        project = render_seed(answers, Path(tmp))
        infrastructure = project / "infrastructure"
        standards = json.loads((project / "org-standards.json").read_text())
        return Seed(
            slug=project.name,
            zip=zip_files(project, tracked_files(project)),
            templates={name: (infrastructure / name).read_bytes() for name in NESTED_TEMPLATES},
            answers=resolved_answers(answers),
            tags=json.loads((infrastructure / "tags.json").read_text()),
            accounts=dict(standards.get("accounts", {})),
            mlflow_tracking_server_arn=standards.get("mlflow_tracking_server_arn"),
            vpc=dict(standards.get("vpc", {})),
            network_isolation=bool(standards.get("network_isolation", False)),
            kms_key_arn=standards.get("kms_key_arn"),
        )
