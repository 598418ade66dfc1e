"""Deploy configuration of a realtime endpoint: the package's baseline, data capture, the quality
alarm and the organisation's network, built against a loopback registry (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy import ENV, KMS, constraints, register, write

from pipelines import deploy_config
from pipelines.settings import Standards, load_settings

pytestmark = pytest.mark.usefixtures("fake_aws")


def test_each_stage_monitors_against_the_deployed_packages_own_baseline(
    tmp_path: Path, registry: Any
) -> None:
    v1 = register(registry, "Approved")
    register(registry, "Approved")
    write(tmp_path, registry, v1)
    for stage in deploy_config.STAGES:
        parameters = json.loads((tmp_path / f"{stage}-config.json").read_text())["Parameters"]
        assert parameters["BaselineStatisticsUri"] == (
            "s3://artifacts/churn/executions/run-1/baseline/statistics.json"
        )
        assert parameters["BaselineConstraintsUri"].endswith("run-1/baseline/constraints.json")
        assert parameters["DataCaptureUri"] == f"s3://artifacts/churn/data-capture/{stage}"
        assert parameters["GroundTruthUri"] == f"s3://artifacts/churn/ground-truth/{stage}"


def test_a_package_without_a_baseline_is_refused(tmp_path: Path, registry: Any) -> None:
    arn = register(registry, "Approved", baseline=False)
    with pytest.raises(deploy_config.DeployConfigError, match="no data-quality baseline"):
        write(tmp_path, registry, arn)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"monitoring_config": {}}, "emit_metrics is None, not 'Enabled'"),
        (
            {
                "monitoring_config": constraints()["monitoring_config"]
                | {"emit_metrics": "Disabled"}
            },
            "emit_metrics is 'Disabled'",
        ),
        ({"features": []}, "no constraints for"),
    ],
)
def test_a_baseline_that_would_publish_no_drift_metric_is_refused(
    tmp_path: Path, registry: Any, change: dict[str, Any], message: str
) -> None:
    arn = register(registry, "Approved", constraints_file=constraints(**change))
    with pytest.raises(deploy_config.DeployConfigError, match=message):
        write(tmp_path, registry, arn)


# --- the quality alarm and the organisation standards -------------------------------------


@pytest.mark.parametrize(
    ("metric", "threshold", "comparison"),
    [
        ("accuracy", 0.9, "LessThanThreshold"),
        ("r2", 0.5, "LessThanThreshold"),
        ("rmse", 70.0, "GreaterThanThreshold"),
        ("mae", 3.0, "GreaterThanThreshold"),
    ],
)
def test_quality_alarm_fires_on_the_wrong_side_of_the_training_gate(
    tmp_path: Path, metric: str, threshold: float, comparison: str
) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    schema_file = next(deploy_config.PROJECT.glob("src/*/schema.json"))
    (tmp_path / "src" / "pkg" / "schema.json").write_text(schema_file.read_text())
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"gate": {"metric": metric, "threshold": threshold}, "train": {}})
    )
    quality = deploy_config.model_quality_parameters(params)
    assert quality["QualityMetric"] == metric
    assert float(quality["QualityThreshold"]) == threshold
    assert quality["QualityAlarmComparison"] == comparison
    schema = json.loads(schema_file.read_text())
    expected = {"regression": "Regression", "classification": "BinaryClassification"}
    assert quality["ModelQualityProblemType"] == expected[schema["problem_type"]]


def test_standards_put_endpoints_in_the_vpc_with_the_org_key() -> None:
    standards = Standards(
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org",
        subnets=("subnet-0a",),
        security_groups=("sg-0b",),
        instance_types={"serving": ("ml.m5.large",)},
    )
    package = deploy_config.Package(
        arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1",
        group="churn",
        version=1,
        status="Approved",
        baseline=deploy_config.Baseline("s3://b/statistics.json", "s3://b/constraints.json"),
    )
    config = deploy_config.stage_config(
        "prod", load_settings(ENV, standards=standards), package, KMS, "monitor-image"
    )
    assert config["Parameters"]["KmsKeyArn"] == standards.kms_key_arn
    assert config["Parameters"]["SubnetIds"] == "subnet-0a"
    assert config["Parameters"]["SecurityGroupIds"] == "sg-0b"
    forbidden = Standards(instance_types={"serving": ("ml.c5.large",)})
    with pytest.raises(ValueError, match="not allowed"):
        deploy_config.stage_config(
            "prod", load_settings(ENV, standards=forbidden), package, KMS, "m"
        )
