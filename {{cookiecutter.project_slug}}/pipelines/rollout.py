"""A stage's deploy settings (the ``Deployment`` section of ``infrastructure/<stage>-config.json``)
checked against the rules SageMaker applies to an endpoint update, and turned into the endpoint
template's parameters.

Ranges and choices come from botocore's SageMaker service model (``TrafficRoutingConfigType``,
``WaitIntervalInSeconds``, ``TerminationWaitInSeconds``, ``MaximumExecutionTimeoutInSeconds``,
``CapacitySizeValue``); the rules the model states only in words come from its documentation of
``TrafficRoutingConfig``: a canary is at most 50% of the variant's instances, a linear step 10% to
50%, and the update's time limit must exceed the waiting it contains. Each refusal is one line
naming the stage, the setting and the rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .endpoint_requests import service_model

MODES = ("replace", "shadow", "ab")
# The variant names, defined once for the local server, the comparison and the endpoint;
# blue/green updates need them unchanged.
VARIANTS_FILE = next((Path(__file__).resolve().parent.parent / "src").glob("*/variants.json"))
_NAMES: dict[str, str] = json.loads(VARIANTS_FILE.read_text())
CHAMPION = _NAMES["champion"]
CHALLENGER = _NAMES["challenger"]
CANARY_SIZE = ("CanaryInstances", "CanaryPercent")
LINEAR_STEP = ("LinearStepInstances", "LinearStepPercent")
SETTINGS = {
    "Mode": "replace, shadow or ab",
    "Rollout": "ALL_AT_ONCE, CANARY or LINEAR",
    **dict.fromkeys(CANARY_SIZE, "canary size (CANARY)"),
    **dict.fromkeys(LINEAR_STEP, "step size (LINEAR)"),
    "WaitIntervalInSeconds": "wait between traffic steps",
    "BakingPeriodInSeconds": "wait after the last step before the old fleet goes",
    "ChallengerPercent": "share of requests the challenger answers (ab)",
    "ErrorRate": "fraction of 5XX answers that rolls an update back",
    "LatencyP99Milliseconds": "p99 model latency that rolls an update back",
}
DEFAULT_ROLLOUT = "CANARY"
# SageMaker's documented bounds on a traffic step, as a share of the variant's instances.
MAX_CANARY_SHARE = 0.5
LINEAR_SHARE = (0.1, 0.5)
# Time a new fleet needs before the first traffic step, on top of the waits (not in the model:
# an allowance, so that the limit is not hit by provisioning itself).
PROVISIONING_ALLOWANCE_SECONDS = 900


class RolloutError(ValueError):
    """Deploy settings SageMaker would reject, or that do not mean what they say."""


def _shape_metadata(name: str) -> dict[str, Any]:
    return dict(service_model().shape_for(name).metadata)


def _bounds(shape: str) -> tuple[int, int]:
    metadata = _shape_metadata(shape)
    return int(metadata.get("min", 0)), int(metadata.get("max", 2**31 - 1))


@dataclass(frozen=True)
class Step:
    """A canary size or linear step: SageMaker's CapacitySize."""

    unit: str  # INSTANCE_COUNT or CAPACITY_PERCENT
    value: int

    def share(self, instances: int) -> float:
        return self.value / instances if self.unit == "INSTANCE_COUNT" else self.value / 100


@dataclass(frozen=True)
class Deployment:
    mode: str
    rollout: str
    step: Step | None
    wait_seconds: int
    baking_seconds: int
    challenger_percent: int
    error_rate: float
    latency_p99_ms: float
    instances: int  # of the champion variant: the canary and linear steps are shares of it

    def steps(self) -> int:
        """Traffic steps of an update, each followed by a wait (the last by the baking period)."""
        if self.rollout == "CANARY":
            return 2
        if self.rollout == "LINEAR" and self.step is not None:
            return math.ceil(1 / self.step.share(self.instances))
        return 1

    def timeout_seconds(self) -> int:
        waiting = (self.steps() - 1) * self.wait_seconds + self.baking_seconds
        low, _ = _bounds("MaximumExecutionTimeoutInSeconds")
        return max(low, waiting + PROVISIONING_ALLOWANCE_SECONDS)


def _integer(where: str, name: str, value: Any, shape: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RolloutError(f"{where}: {name} must be a whole number, not {value!r}")
    if shape:
        low, high = _bounds(shape)
        if not low <= value <= high:
            raise RolloutError(
                f"{where}: {name} is {value}, SageMaker accepts {low} to {high} ({shape})"
            )
    return value


def _step(where: str, settings: dict[str, Any], rollout: str, instances: int) -> Step | None:
    for kind, keys in (("CANARY", CANARY_SIZE), ("LINEAR", LINEAR_STEP)):
        given = [key for key in keys if key in settings]
        if given and rollout != kind:
            raise RolloutError(f"{where}: {given[0]} applies to {kind} rollouts, not {rollout}")
        if len(given) == 2:
            raise RolloutError(
                f"{where}: {keys[0]} and {keys[1]} both given; SageMaker takes one "
                f"{SETTINGS[keys[0]]}, as an instance count or a percentage"
            )
        if rollout != kind:
            continue
        if not given:
            raise RolloutError(f"{where}: a {kind} rollout needs {keys[0]} or {keys[1]}")
        (key,) = given
        low, _ = _bounds("CapacitySizeValue")
        value = _integer(where, key, settings[key])
        if value < low:
            raise RolloutError(f"{where}: {key} is {value}, SageMaker's minimum is {low}")
        step = Step("INSTANCE_COUNT" if key.endswith("Instances") else "CAPACITY_PERCENT", value)
        share = step.share(instances)
        if instances < 2:
            raise RolloutError(
                f"{where}: a {kind} rollout shifts part of the fleet, and one instance has no "
                "part smaller than itself: use ALL_AT_ONCE or EndpointInstanceCount 2 or more"
            )
        if kind == "CANARY" and share > MAX_CANARY_SHARE:
            raise RolloutError(
                f"{where}: {key} {value} is {share:.0%} of the variant's {instances} instances; "
                "SageMaker's canary is at most 50% of them"
            )
        if kind == "LINEAR" and not LINEAR_SHARE[0] <= share <= LINEAR_SHARE[1]:
            raise RolloutError(
                f"{where}: {key} {value} is {share:.0%} of the variant's {instances} instances; "
                "SageMaker's linear step is 10% to 50% of them"
            )
        return step
    return None


def read_deployment(where: str, settings: dict[str, Any], instances: int) -> Deployment:
    """The ``Deployment`` settings of one stage, or a RolloutError naming what is wrong.

    ``where`` names the settings in messages; ``instances`` is the variant's instance count
    (``EndpointInstanceCount``), which bounds the canary and linear steps.
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        known = ", ".join(SETTINGS)
        raise RolloutError(f"{where}: unknown setting {unknown[0]!r} (known: {known})")
    mode = settings.get("Mode", "replace")
    if mode not in MODES:
        raise RolloutError(f"{where}: Mode is {mode!r}, not one of {', '.join(MODES)}")
    rollouts = _shape_metadata("TrafficRoutingConfigType")["enum"]
    rollout = settings.get("Rollout", DEFAULT_ROLLOUT)
    if rollout not in rollouts:
        raise RolloutError(f"{where}: Rollout is {rollout!r}, not one of {', '.join(rollouts)}")
    step = _step(where, settings, rollout, instances)
    wait = _integer(
        where,
        "WaitIntervalInSeconds",
        settings.get("WaitIntervalInSeconds", 300),
        "WaitIntervalInSeconds",
    )
    baking = _integer(
        where,
        "BakingPeriodInSeconds",
        settings.get("BakingPeriodInSeconds", 600),
        "TerminationWaitInSeconds",
    )
    if "ChallengerPercent" in settings and mode != "ab":
        raise RolloutError(f"{where}: ChallengerPercent applies to Mode ab, not {mode}")
    percent = _integer(where, "ChallengerPercent", settings.get("ChallengerPercent", 10))
    if not 1 <= percent <= 99:
        raise RolloutError(f"{where}: ChallengerPercent is {percent}, not 1 to 99")
    error_rate = settings.get("ErrorRate", 0.01)
    if isinstance(error_rate, bool) or not isinstance(error_rate, int | float):
        raise RolloutError(f"{where}: ErrorRate must be a number, not {error_rate!r}")
    if not 0 < error_rate < 1:
        raise RolloutError(f"{where}: ErrorRate is {error_rate}, a fraction between 0 and 1")
    latency = settings.get("LatencyP99Milliseconds", 500)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency <= 0:
        raise RolloutError(f"{where}: LatencyP99Milliseconds must be a positive number")
    deployment = Deployment(
        mode, rollout, step, wait, baking, percent, float(error_rate), float(latency), instances
    )
    _, high = _bounds("MaximumExecutionTimeoutInSeconds")
    if deployment.timeout_seconds() > high:
        raise RolloutError(
            f"{where}: {deployment.steps()} step(s) of {wait} s and {baking} s of baking take "
            f"longer than SageMaker's {high} s limit on one update (with "
            f"{PROVISIONING_ALLOWANCE_SECONDS} s for the new fleet to start)"
        )
    return deployment


def template_parameters(deployment: Deployment, guarded: bool) -> dict[str, str]:
    """The endpoint template's rollout and mode parameters for this deployment."""
    ab, split = deployment.mode == "ab", deployment.challenger_percent
    parameters = {
        "ChampionVariant": CHAMPION,
        "ChallengerVariant": CHALLENGER,
        "DeployMode": deployment.mode,
        "RolloutType": deployment.rollout,
        "RolloutWaitSeconds": str(deployment.wait_seconds),
        "RolloutBakingSeconds": str(deployment.baking_seconds),
        "RolloutTimeoutSeconds": str(deployment.timeout_seconds()),
        "GuardedUpdate": "true" if guarded else "false",
        "ErrorRateThreshold": str(deployment.error_rate),
        "LatencyP99Microseconds": str(round(deployment.latency_p99_ms * 1000)),
        "ChampionWeight": str(100 - split if ab else 1),
        "ChallengerWeight": str(split if ab else 1),
    }
    if deployment.step is not None:
        parameters |= {
            "RolloutStepType": deployment.step.unit,
            "RolloutStepValue": str(deployment.step.value),
        }
    return parameters


def variants(mode: str) -> tuple[str, ...]:
    """The variant names an endpoint deployed in this mode has (production and shadow)."""
    return (CHAMPION,) if mode == "replace" else (CHAMPION, CHALLENGER)
