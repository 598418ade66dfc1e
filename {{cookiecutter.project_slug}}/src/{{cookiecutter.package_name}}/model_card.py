"""The model card of a trained model, in AWS's model card JSON schema, and its local renderings.

One function, :func:`content`, writes the card: the pipeline's evaluation job writes it beside
the metrics and the register step attaches it to the model package (``CreateModelPackage``'s
``ModelCard``: ``ModelCardContent``, the card as JSON text, and ``ModelCardStatus``); ``make
model-card`` writes the same card for the model of the last ``dvc repro``, as JSON, Markdown and
HTML in ``reports/``. The schema is the one SageMaker applies to a model package's card
(``model_card_schema.json`` of the SageMaker Python SDK, without ``model_package_details``); the
project's tests validate the card against a copy of it.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from pathlib import Path
from typing import Any

# ModelCardStatus of a registered package's card: a person reviews it with the approval.
STATUS = "PendingReview"
CARD_FILE = "model_card.json"
# What the schema allows in one custom_details value and in an evaluation's metadata value.
VALUE_LENGTH = 1024
# The metric kinds that are numbers in the schema's simple_metric.
KINDS = {"binary_classification_metrics", "multiclass_classification_metrics", "regression_metrics"}


def _short(text: str, limit: int = VALUE_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def content(
    *,
    report: dict[str, Any],
    gate_metric: str,
    gate_threshold: float,
    lower_is_better: bool,
    problem_type: str,
    features: list[tuple[str, str]],
    data_version: str,
    data_uri: str,
    intended_use: str,
    description: str,
    framework: str,
    image: str,
    packages: dict[str, str | None],
    lineage: dict[str, str],
) -> dict[str, Any]:
    """The card: what the model is for, what it was trained on, how it scored against the gate,
    the data contract's features, the framework and image, and where it came from."""
    values = {
        name: float(entry["value"])
        for section, entries in report.items()
        if section in KINDS
        for name, entry in entries.items()
    }
    gate_value = values.get(gate_metric, math.nan)
    relation = "<=" if lower_is_better else ">="
    passed = (gate_value <= gate_threshold) if lower_is_better else (gate_value >= gate_threshold)
    verdict = (
        f"{gate_metric} = {gate_value:.4f} on the held-out test split; the quality gate requires "
        f"{relation} {gate_threshold}: {'passed' if passed else 'FAILED'}"
    )
    dataset = data_uri or f"data version {data_version}"
    custom = {
        "data_version": data_version,
        "gate": f"{gate_metric} {relation} {gate_threshold}",
        "gate_result": "passed" if passed else "failed",
        "framework": framework,
        **{f"package {name}": version or "not installed" for name, version in packages.items()},
        **{f"lineage {key}": value for key, value in lineage.items() if value},
        **{f"feature {name}": kind for name, kind in features},
    }
    return {
        "model_overview": {
            "model_description": _short(description),
            "problem_type": problem_type,
            "algorithm_type": _short(framework),
            **({"model_artifact": [lineage["model_data"]]} if lineage.get("model_data") else {}),
        },
        "intended_uses": {
            "purpose_of_model": _short(description, 2048),
            "intended_uses": _short(intended_use, 2048),
            "risk_rating": "Unknown",
        },
        "training_details": {
            "training_observations": _short(
                f"Trained on data version {data_version} ({dataset}); "
                f"{len(features)} features from the data contract (schema.json)."
            ),
            "training_job_details": {
                "training_datasets": [_short(dataset)],
                "training_environment": {"container_image": [_short(image)]},
            },
        },
        "evaluation_details": [
            {
                "name": "held-out test split",
                "evaluation_observation": verdict,
                "datasets": [_short(dataset)],
                "metadata": {"data_version": data_version, "quality_gate": verdict[:VALUE_LENGTH]},
                "metric_groups": [
                    {
                        "name": section,
                        "metric_data": [
                            {"name": name, "type": "number", "value": float(entry["value"])}
                            for name, entry in entries.items()
                            if math.isfinite(float(entry["value"]))
                        ],
                    }
                    for section, entries in report.items()
                    if section in KINDS
                ],
            }
        ],
        "additional_information": {
            "custom_details": {key: _short(str(value)) for key, value in custom.items()},
        },
    }


def markdown(card: dict[str, Any], title: str) -> str:
    """The card as Markdown: what a reviewer reads before approving."""
    overview, uses = card["model_overview"], card["intended_uses"]
    evaluation = card["evaluation_details"][0]
    lines = [
        f"# Model card: {title}",
        "",
        f"{overview['model_description']}",
        "",
        "## Intended use",
        "",
        uses["intended_uses"],
        "",
        "## Quality gate",
        "",
        evaluation["evaluation_observation"],
        "",
        "## Metrics (held-out test split)",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    for group in evaluation["metric_groups"]:
        lines += [f"| {m['name']} | {m['value']:.4f} |" for m in group["metric_data"]]
    training = card["training_details"]
    image = training["training_job_details"]["training_environment"]["container_image"][0]
    lines += [
        "",
        "## Training data and environment",
        "",
        training["training_observations"],
        "",
        f"Image: `{image}`",
        "",
        "## Details",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [
        f"| {key} | {value} |"
        for key, value in card["additional_information"]["custom_details"].items()
    ]
    return "\n".join(lines) + "\n"


def to_html(card: dict[str, Any], title: str) -> str:
    """The Markdown's content as one self-contained HTML page."""
    body = []
    table: list[str] = []
    for line in markdown(card, title).splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            table.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line and not line.startswith("| ---"):
            body.append(f"<p>{html.escape(line)}</p>")
    if table:
        body.append("<table>" + "".join(table) + "</table>")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;max-width:60em}td{border:1px solid #ccc;"
        "padding:2px 6px}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def from_project(
    report: dict[str, Any],
    *,
    gate_metric: str,
    gate_threshold: float,
    data_version: str,
    data_uri: str,
    intended_use: str,
    image: str,
    lineage: dict[str, str],
) -> dict[str, Any]:
    """:func:`content` with what the project itself knows: its data contract, its description,
    its framework and the installed package versions."""
    from .data import load_schema
    from .estimator import framework_versions
    from .evaluate import LOWER_IS_BETTER
    from .lineage import package_versions

    schema = load_schema()
    project = Path(__file__).resolve().parent
    description = intended_use
    metadata = project.parent.parent / "pyproject.toml"
    if metadata.exists():
        import tomllib

        description = tomllib.loads(metadata.read_text())["project"].get("description", description)
    return content(
        report=report,
        gate_metric=gate_metric,
        gate_threshold=gate_threshold,
        lower_is_better=gate_metric in LOWER_IS_BETTER,
        problem_type=schema.problem_type,
        features=[(f.name, "categorical" if f.categorical else "numeric") for f in schema.features],
        data_version=data_version,
        data_uri=data_uri,
        intended_use=intended_use,
        description=description,
        framework=" ".join(f"{name} {version}" for name, version in framework_versions().items()),
        image=image,
        packages=package_versions(),
        lineage=lineage,
    )


def main(argv: list[str] | None = None) -> int:
    """``make model-card``: the card of the last ``dvc repro``'s model, in reports/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument("--lineage", type=Path, default=Path("models/lineage.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--output-dir", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    for path in (args.metrics, args.lineage, args.params):
        if not path.exists():
            print(f"error: {path} is missing; run `make repro` first", file=sys.stderr)
            return 2
    from .params import load_params

    gate = load_params(args.params)["gate"]
    record = json.loads(args.lineage.read_text())
    card = local_card(json.loads(args.metrics.read_text()), gate, record)
    title = args.output_dir.resolve().parent.name
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (args.output_dir / "model_card.md").write_text(markdown(card, title))
    (args.output_dir / "model_card.html").write_text(to_html(card, title))
    print(f"model card: {args.output_dir / 'model_card.md'} (and .html, .json)")
    return 0


def local_card(
    report: dict[str, Any], gate: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """The card of a local model: its lineage record (models/lineage.json) says what it was
    trained on; the image is the SageMaker scikit-learn image version the pipeline registers it
    with (pipelines/defaults.json)."""
    data = record.get("data") or {}
    image = f"SageMaker scikit-learn image {deploy_settings().get('sklearn_version', '')}"
    return from_project(
        report,
        gate_metric=str(gate["metric"]),
        gate_threshold=float(gate["threshold"]),
        data_version=str(data.get("md5") or data.get("version") or "unknown"),
        data_uri=str(data.get("uri") or data.get("pointer") or ""),
        intended_use=str(deploy_settings().get("intended_use", "")),
        image=image,
        lineage={
            "git_commit": str((record.get("code") or {}).get("commit") or ""),
            "model_sha256": str((record.get("model") or {}).get("sha256") or ""),
        },
    )


def deploy_settings() -> dict[str, Any]:
    """The project's deploy settings (pipelines/defaults.json), where they are beside the code."""
    defaults = Path(__file__).resolve().parents[2] / "pipelines" / "defaults.json"
    return dict(json.loads(defaults.read_text())) if defaults.exists() else {}


if __name__ == "__main__":
    sys.exit(main())
