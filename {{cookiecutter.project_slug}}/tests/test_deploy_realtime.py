"""Deploy configuration of a realtime endpoint: the package's baseline, data capture, the quality
alarm and the organisation's network, built against a loopback registry (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from deploy_setup import (
    DEFINITIONS,
    ENV,
    KMS,
    constraints,
    package,
    project_settings,
    register,
    write,
    written_parameters,
)

from pipelines import deploy_config
from pipelines.settings import Network, Standards

pytestmark = pytest.mark.usefixtures("fake_aws")


def test_each_stage_monitors_against_the_deployed_packages_own_baseline(
    tmp_path: Path, registry: Any
) -> None:
    v1 = register(registry, "Approved", model_data="s3://artifacts/churn/run-1/model.tar.gz")
    register(registry, "Approved", model_data="s3://artifacts/churn/run-2/model.tar.gz")
    write(tmp_path, registry, v1)
    for stage in deploy_config.STAGES:
        parameters = written_parameters(tmp_path, stage)
        # the model.tar.gz whose baseline.json the monitoring job compares live inputs with
        assert parameters["ModelDataUri"] == "s3://artifacts/churn/run-1/model.tar.gz"
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
        yaml.safe_dump(
            {
                "gate": {"metric": metric, "threshold": threshold},
                "train": {},
                "monitor": {"missing_shift": 0.1},
            }
        )
    )
    quality = deploy_config.model_quality_parameters(params)
    assert quality["QualityMetric"] == metric
    assert float(quality["QualityThreshold"]) == threshold
    assert quality["QualityAlarmComparison"] == comparison


def test_standards_put_endpoints_in_the_vpc_with_the_org_key() -> None:
    standards = Standards(
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/org",
        subnets=("subnet-0a",),
        security_groups=("sg-0b",),
        instance_types={"serving": ("ml.m5.large",)},
    )
    plan = deploy_config.StagePlan(package(1), None, deploy_config.stage_deployment("prod"))
    config = deploy_config.stage_config("prod", project_settings(standards), plan, KMS, DEFINITIONS)
    assert config["Parameters"]["KmsKeyArn"] == standards.kms_key_arn
    assert config["Parameters"]["SubnetIds"] == "subnet-0a"
    assert config["Parameters"]["SecurityGroupIds"] == "sg-0b"
    forbidden = Standards(instance_types={"serving": ("ml.c5.large",)})
    with pytest.raises(ValueError, match="not allowed"):
        deploy_config.stage_config("prod", project_settings(forbidden), plan, KMS, "m")


# --- staging and prod in accounts of their own (org-standards.json `accounts`) --------------------

BUILD_ACCOUNT = "123456789012"  # the account moto answers as: this deploy's build account
SEPARATE = {"staging": "111111111111", "prod": "222222222222"}
DEPLOY_STACK_ENV = {"STAGING_ACCOUNT_ID": SEPARATE["staging"], "PROD_ACCOUNT_ID": SEPARATE["prod"]}


def _account_of(value: str) -> str | None:
    """The account an ARN names, or the one a target data bucket is named after."""
    if value.startswith("arn:"):
        return value.split(":")[4] or None
    if value.startswith("s3://"):
        bucket = value.removeprefix("s3://").split("/")[0]
        return bucket.rsplit("-", 1)[1] if bucket.rsplit("-", 1)[-1].isdigit() else None
    return None


def test_separate_accounts_stage_configs_name_each_stages_own_account(
    tmp_path: Path, registry: Any
) -> None:
    arn = register(registry, "Approved")
    accounts = deploy_config.target_accounts(SEPARATE, BUILD_ACCOUNT, DEPLOY_STACK_ENV)
    clients = (registry, boto3.client("s3", region_name="us-east-1"))
    separate = project_settings(Standards(accounts=SEPARATE))
    deploy_config.write_configs(tmp_path, separate, clients, KMS, arn, accounts, BUILD_ACCOUNT)
    write(tmp_path / "single", registry, arn)
    for stage, account in SEPARATE.items():
        parameters = written_parameters(tmp_path, stage)
        single = written_parameters(tmp_path / "single", stage)
        named = {key: _account_of(str(value)) for key, value in parameters.items()}
        # the package, its model artifact (the monitor's baseline) and the monitoring
        # pipeline's definition stay in the build account's registry and bucket; the definition
        # names the prod account's role, so it differs from the one-account definition
        assert named["ModelPackageArn"] == BUILD_ACCOUNT
        for key in ("ModelDataUri", "PipelineDefinitionBucket"):
            assert parameters[key] == single[key], key
        assert parameters["MonitorPipelineDefinitionKey"] != single["MonitorPipelineDefinitionKey"]
        assert parameters["BuildAccountId"] == BUILD_ACCOUNT
        # what the endpoint runs as, encrypts with and writes to is the stage account's own
        for key in ("ModelExecutionRoleArn", "KmsKeyArn", "DataCaptureUri", "MonitoringOutputUri"):
            assert named[key] == account, (stage, key, parameters[key])
        assert named["GroundTruthUri"] == account
        assert set(parameters) - set(single) == {"BuildAccountId"}
        assert set(parameters) <= set(deploy_config.template_parameters())


@pytest.mark.parametrize(
    ("accounts", "environ", "build", "words"),
    [
        (
            SEPARATE,
            {},
            BUILD_ACCOUNT,
            "prod 222222222222 but the deploy stack was deployed for none",
        ),
        ({}, DEPLOY_STACK_ENV, BUILD_ACCOUNT, "names the accounts none but the deploy stack was"),
        (
            SEPARATE,
            DEPLOY_STACK_ENV | {"PROD_ACCOUNT_ID": "333333333333"},
            BUILD_ACCOUNT,
            "for staging 111111111111, prod 333333333333 ",
        ),
        (SEPARATE, DEPLOY_STACK_ENV, SEPARATE["prod"], "accounts.prod in org-standards.json is"),
    ],
)
def test_accounts_the_deploy_stack_or_sts_disagree_with_are_refused(
    accounts: dict[str, str], environ: dict[str, str], build: str, words: str
) -> None:
    with pytest.raises(deploy_config.DeployConfigError, match=words) as caught:
        deploy_config.target_accounts(accounts, build, environ)
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_separate_account_that_is_the_build_account(
    tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The build account is the one STS says the deploy build runs in (moto's here)."""
    same = {"staging": BUILD_ACCOUNT, "prod": SEPARATE["prod"]}
    for name, value in (
        ENV.items() | {"KMS_KEY_ARN": KMS, "STAGING_ACCOUNT_ID": BUILD_ACCOUNT}.items()
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROD_ACCOUNT_ID", SEPARATE["prod"])
    monkeypatch.setenv("MODEL_PACKAGE_ARN", register(registry, "Approved"))
    monkeypatch.setattr(
        deploy_config, "load_settings", lambda: project_settings(Standards(accounts=same))
    )
    assert deploy_config.main(["--output-dir", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: accounts.staging in org-standards.json is {BUILD_ACCOUNT}")
    assert not (tmp_path / "staging-config.json").exists()


# --- the vpc standard in accounts of their own (org-standards.json `stage_vpc`) -------------------

BUILD_NETWORK = Network(subnets=("subnet-0a",), security_groups=("sg-0b",))
STAGE_NETWORKS = {
    "staging": Network(subnets=("subnet-1a", "subnet-1b"), security_groups=("sg-1c",)),
    "prod": Network(subnets=("subnet-2a", "subnet-2b"), security_groups=("sg-2c", "sg-2d")),
}


def _vpc_standards(stage_networks: dict[str, Network]) -> Standards:
    return Standards(
        subnets=BUILD_NETWORK.subnets,
        security_groups=BUILD_NETWORK.security_groups,
        accounts=SEPARATE,
        stage_networks=stage_networks,
    )


def test_separate_accounts_with_a_vpc_put_each_stage_in_its_own_accounts_network(
    tmp_path: Path, registry: Any
) -> None:
    """Subnets belong to one account: the build account's would be refused by SageMaker in the
    target account, and none at all would leave the endpoint outside any VPC."""
    arn = register(registry, "Approved")
    accounts = deploy_config.target_accounts(SEPARATE, BUILD_ACCOUNT, DEPLOY_STACK_ENV)
    clients = (registry, boto3.client("s3", region_name="us-east-1"))
    separate = project_settings(_vpc_standards(STAGE_NETWORKS))
    deploy_config.write_configs(tmp_path, separate, clients, KMS, arn, accounts, BUILD_ACCOUNT)
    for stage, network in STAGE_NETWORKS.items():
        parameters = written_parameters(tmp_path, stage)
        assert parameters["SubnetIds"] == ",".join(network.subnets)
        assert parameters["SecurityGroupIds"] == ",".join(network.security_groups)


@pytest.mark.parametrize(
    ("standards", "words"),
    [
        (
            _vpc_standards({"staging": STAGE_NETWORKS["staging"]}),
            "org-standards.json: stage_vpc.prod: the vpc standard applies to the prod account "
            "222222222222 too, whose network is not named",
        ),
        (
            _vpc_standards(STAGE_NETWORKS | {"staging": Network(subnets=("subnet-1a",))}),
            "org-standards.json: stage_vpc.staging: the vpc standard applies to the staging "
            "account 111111111111 too",
        ),
        (
            Standards(accounts=SEPARATE, stage_networks=STAGE_NETWORKS),
            "org-standards.json: stage_vpc is given without both vpc and accounts",
        ),
    ],
)
def test_cli_refuses_a_vpc_standard_edited_to_leave_a_stage_without_its_network(
    tmp_path: Path,
    registry: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    standards: Standards,
    words: str,
) -> None:
    """org-standards.json edited after the render (the generator refuses the same file)."""
    for name, value in ENV.items() | DEPLOY_STACK_ENV.items() | {"KMS_KEY_ARN": KMS}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_PACKAGE_ARN", register(registry, "Approved"))
    monkeypatch.setattr(deploy_config, "load_settings", lambda: project_settings(standards))
    assert deploy_config.main(["--output-dir", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {words}")
    assert not list(tmp_path.glob("*-config.json"))


def test_a_stage_network_sagemaker_would_refuse_is_refused_before_anything_is_written(
    tmp_path: Path, registry: Any
) -> None:
    """SageMaker takes at most 5 security groups in a VpcConfig: a stage_vpc edited past that is
    refused from the CreateModel request, naming it, and no configuration is written."""
    arn = register(registry, "Approved")
    accounts = deploy_config.target_accounts(SEPARATE, BUILD_ACCOUNT, DEPLOY_STACK_ENV)
    clients = (registry, boto3.client("s3", region_name="us-east-1"))
    crowded = Network(subnets=("subnet-2a",), security_groups=tuple(f"sg-2{i}" for i in range(6)))
    settings = project_settings(_vpc_standards(STAGE_NETWORKS | {"prod": crowded}))
    with pytest.raises(
        ValueError, match=r"CreateModel would be rejected: .*SecurityGroupIds"
    ) as caught:
        deploy_config.write_configs(tmp_path, settings, clients, KMS, arn, accounts, BUILD_ACCOUNT)
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*-config.json"))
