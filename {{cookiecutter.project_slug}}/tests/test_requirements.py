"""The jobs run the locked libraries: the runtime export of uv.lock, checked against the image."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from pipelines import requirements as runtime
from pipelines.code_bundle import collect
from pipelines.settings import DEFAULTS_FILE

PROJECT = Path(__file__).resolve().parent.parent
# What the SageMaker scikit-learn image ships, recorded from its public source (cited in the file).
IMAGE_FILE = json.loads((PROJECT / "pipelines" / "image_versions.json").read_text())


def image_packages() -> dict[str, str]:
    """The image's pinned packages (its requirements, then what its Dockerfile reinstalls)."""
    pins = {}
    for line in IMAGE_FILE["requirements"] + IMAGE_FILE.get("after_requirements", []):
        requirement = Requirement(line)
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if exact:
            pins[requirement.name.lower()] = exact[0]
    return pins


TOOLING = {"sagemaker", "boto3", "botocore", "dvc", "dvc-s3", "moto", "pytest", "matplotlib"}


def applies(requirement: Requirement, python: str) -> bool:
    """Whether ``requirement`` applies on the image (Linux, ``python``), as its pip evaluates it."""
    environment = {"python_version": python, "python_full_version": f"{python}.0"}
    environment |= {"sys_platform": "linux", "platform_system": "Linux"}
    return requirement.marker is None or requirement.marker.evaluate(environment)


def pins_for(python: str) -> dict[str, str]:
    """The exported pins that apply on ``python`` (as the image's interpreter evaluates them)."""
    pins = {}
    for line in runtime.REQUIREMENTS.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if applies(requirement, python):
            (specifier,) = requirement.specifier
            pins[requirement.name] = specifier.version
    return pins


def test_requirements_are_the_runtime_export_of_the_lock() -> None:
    assert runtime.main(["--check"]) == 0, "src/requirements.txt is stale: run make requirements"
    pins = pins_for("3.12")
    declared = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in declared:
        requirement = Requirement(dependency)
        if applies(requirement, "3.12"):  # a wheel for other platforms only reaches no job
            assert requirement.name.replace("_", "-").lower() in pins, dependency
    assert not TOOLING & set(pins), "tooling must not reach the jobs"


def test_requirements_ship_with_every_job_and_the_model(tmp_path: Path) -> None:
    assert "requirements.txt" in collect().files
    package = json.loads(DEFAULTS_FILE.read_text())["package"]
    model = tmp_path / "model"
    train = importlib.import_module(f"{package}.train")
    arguments = ["--train-dir", str(PROJECT / "data" / "raw"), "--model-dir", str(model)]
    assert train.main([*arguments, "--bundle-inference-code"]) == 0
    assert (model / "code" / "requirements.txt").read_text() == runtime.REQUIREMENTS.read_text()


def test_the_image_and_the_lock_agree_on_scikit_learn() -> None:
    """The model is pickled by the lock's scikit-learn and loaded by the image's: one version.

    The image's versions come from its public source (pipelines/image_versions.json cites the
    repository, commit and files); the jobs run the image's Python, 3.12, whatever the project's.
    """
    image = image_packages()
    defaults = json.loads(DEFAULTS_FILE.read_text())
    # The SDK's image tag (1.9-0) names the scikit-learn release line the image ships.
    release_line = ".".join(image["scikit-learn"].split(".")[:2])
    assert defaults["sklearn_version"].split("-")[0] == release_line
    pins = pins_for(IMAGE_FILE["python"])
    assert pins["scikit-learn"] == image["scikit-learn"]
    # What a job installs over the image (the README names these for network isolation).
    differing = {name for name, version in image.items() if name in pins and pins[name] != version}
    assert {"pandas", "numpy", "scipy"} <= differing
    requires = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(requires).contains(f"{IMAGE_FILE['python']}.0"), "the lock covers 3.12"


def test_job_entry_installs_only_what_differs(tmp_path: Path) -> None:
    """Matching pins need nothing (no network); a difference that cannot be downloaded stops
    the job with the package named, as it would under network isolation."""
    sys.path.insert(0, str(PROJECT / "src"))
    try:
        import job_entry
    finally:
        sys.path.pop(0)
    assert job_entry.unmet(runtime.REQUIREMENTS) == []  # this environment is the lock
    assert job_entry.install_locked(runtime.REQUIREMENTS) == 0

    stale = tmp_path / "requirements.txt"
    stale.write_text("scikit-learn==0.0.1\n")
    (problem,) = job_entry.unmet(stale)
    assert problem.startswith("scikit-learn: ")
    # job_entry.py reads the requirements.txt beside it, so run a copy beside the stale file.
    copy = tmp_path / "job_entry.py"
    copy.write_text((PROJECT / "src" / "job_entry.py").read_text())
    result = subprocess.run(
        [sys.executable, str(copy), "json.tool", "--help"],
        cwd=tmp_path,
        env={"PIP_NO_INDEX": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == job_entry.CANNOT_INSTALL, result.stderr[-2000:]
    assert "network isolation" in result.stderr and "scikit-learn" in result.stderr
