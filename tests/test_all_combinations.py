"""Option combinations render, and their CloudFormation is cfn-lint and checkov clean.

Most combinations render identical CloudFormation (the Python version, licence and problem type
barely touch it; the model framework never does), so each *distinct* file is linted once:
rendering the combinations is cheap, linting is not.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from . import iam_model as iam
from .conftest import TEMPLATE
from .test_infrastructure import checkov_report, tool
from .test_permissions import (
    excess_grants,
    missing_permissions,
    parliament_findings,
    rendered_stacks,
    stage_stacks,
)

pytestmark = pytest.mark.slow

CHOICES = {
    key: value
    for key, value in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if isinstance(value, list) and not key.startswith("_")
}
MODES = CHOICES["inference_mode"]
FRAMEWORKS = CHOICES["model_framework"]


def product(choices: dict[str, list[str]]) -> list[dict[str, str]]:
    values = itertools.product(*choices.values())
    return [dict(zip(choices, row, strict=True)) for row in values]


# Every combination for the default inference mode and framework; each other framework is
# crossed with the answers rendered into the same files as its own (params.yaml: problem type;
# pyproject.toml: licence, Python version), never with those of CloudFormation or CI, which it
# does not touch; each other mode is crossed with the choices that shape its CloudFormation (the
# licence never does). Fewer renders than a full product, and every distinct file is linted once
# all the same.
DEFAULTS = {key: values[:1] for key, values in CHOICES.items()}
COMBINATIONS = (
    product({**CHOICES, "inference_mode": MODES[:1], "model_framework": FRAMEWORKS[:1]})
    + product(
        {
            **DEFAULTS,
            **{key: CHOICES[key] for key in ("problem_type", "python_version", "license")},
            "model_framework": FRAMEWORKS[1:],
        }
    )
    + product(
        {
            **DEFAULTS,
            **{
                key: CHOICES[key]
                for key in ("problem_type", "source_control", "ci_system", "python_version")
            },
            "inference_mode": MODES[1:],
        }
    )
)


def refused(answers: dict[str, str]) -> bool:
    """The answer rules refuse GitHub Actions on a CodeCommit repository (hooks/template_rules)."""
    return answers["ci_system"] == "github-actions" and answers["source_control"] != "github"


# One rendered project per distinct set of infrastructure files (for the checks that resolve a
# project's stacks together), filled by the fixture below.
DISTINCT_PROJECTS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def distinct_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Render every combination; keep one copy of each distinct CloudFormation file."""
    renders = tmp_path_factory.mktemp("renders")
    distinct = tmp_path_factory.mktemp("distinct")
    files: dict[str, Path] = {}
    rendered = 0
    with pytest.MonkeyPatch.context() as patch:  # cookiecutter's replay files stay out of ~
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        rendered = _render_all(renders, distinct, files)
    assert rendered == len([c for c in COMBINATIONS if not refused(c)])
    product = distinct / "service-catalog-product.yaml"
    product.write_bytes((TEMPLATE / "service_catalog" / "product.yaml").read_bytes())
    files["product"] = product
    return files


def _render_all(renders: Path, distinct: Path, files: dict[str, Path]) -> int:
    DISTINCT_PROJECTS.clear()
    rendered = 0
    for number, answers in enumerate(COMBINATIONS):
        output = renders / str(number)
        if refused(answers):
            with pytest.raises(FailedHookException):
                cookiecutter(
                    str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output)
                )
            assert not output.exists() or not any(output.iterdir()), answers  # nothing left
            continue
        project = Path(
            cookiecutter(
                str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output)
            )
        )
        rendered += 1
        infrastructure = sorted((project / "infrastructure").glob("*.yaml"))
        whole = hashlib.sha256(b"".join(p.read_bytes() for p in infrastructure)).hexdigest()
        DISTINCT_PROJECTS.setdefault(whole, project)
        for path in infrastructure:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            if digest not in files:
                files[digest] = distinct / f"{path.stem}-{digest}.yaml"
                files[digest].write_bytes(path.read_bytes())
    return rendered


def test_every_combination_is_counted() -> None:
    # realtime, scikit-learn: 2 problem types x 2 sources x 2 CI x 3 Pythons x 3 licences;
    # each other framework: 2 problem types x 3 Pythons x 3 licences (GitHub, CodePipeline);
    # each other mode: 2 x 2 x 2 x 3 (framework and licence at their defaults).
    assert len(COMBINATIONS) == 72 + (len(FRAMEWORKS) - 1) * 18 + (len(MODES) - 1) * 24
    assert len([c for c in COMBINATIONS if refused(c)]) == 18 + (len(MODES) - 1) * 6
    assert len({json.dumps(c, sort_keys=True) for c in COMBINATIONS}) == len(COMBINATIONS)
    for key, values in CHOICES.items():
        for value in values:
            assert any(c[key] == value for c in COMBINATIONS if not refused(c)), (key, value)


def test_cfn_lint_is_clean_on_every_distinct_file(distinct_templates: dict[str, Path]) -> None:
    result = subprocess.run(
        [tool("cfn-lint"), *map(str, distinct_templates.values())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_has_no_failed_checks_on_any_distinct_file(
    distinct_templates: dict[str, Path],
) -> None:
    folder = next(iter(distinct_templates.values())).parent
    report = checkov_report("-d", str(folder))
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert report["summary"]["failed"] == 0, failed
    for skipped in report["results"]["skipped_checks"]:
        assert skipped.get("check_result", {}).get("suppress_comment"), skipped["check_id"]


def test_every_distinct_render_passes_parliament_and_the_schema_permissions(
    distinct_templates: dict[str, Path],
) -> None:
    """tests/test_permissions.py's checks (both directions), on every distinct rendered
    infrastructure."""
    assert DISTINCT_PROJECTS
    for project in DISTINCT_PROJECTS.values():
        stacks = rendered_stacks(project)
        assert parliament_findings(stacks) == [], project
        named = dict(stacks)
        role = iam.role_documents(named["deploy-pipeline.yaml"], "CloudFormationRole")
        replace_stacks = [label for label in named if label.endswith(("[staging]", "[prod]"))]
        assert len(replace_stacks) == 2, project
        for label in replace_stacks:
            assert missing_permissions(named[label], role) == [], project
        assert excess_grants(stage_stacks(named), role) == [], project
