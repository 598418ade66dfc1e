"""The jobs run the locked libraries: the runtime export of uv.lock, checked against the image."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

from pipelines import requirements as runtime
from pipelines.code_bundle import collect
from pipelines.offline_install import parse_requirements
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
    for requirement in parse_requirements(runtime.REQUIREMENTS.read_text()).pins:
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
    # The locked pins without their hashes: the image's `pip install . -r requirements.txt`
    # refuses hashes beside the folder it installs (model_code.py).
    shipped = (model / "code" / "requirements.txt").read_text()
    locked = parse_requirements(runtime.REQUIREMENTS.read_text()).pins
    assert parse_requirements(shipped).pins == locked
    assert "--hash" not in shipped and not (model / "code" / "wheels").exists()  # no isolation here
    # The platform library, which no index serves, beside the file that names its folder.
    assert "\n--find-links platform-wheels\n" in shipped
    (carried,) = (PROJECT / "src" / "platform-wheels").glob("*.whl")
    assert (model / "code" / "platform-wheels" / carried.name).read_bytes() == carried.read_bytes()
    assert f"platform-wheels/{carried.name}" in collect().files


def test_every_shipped_pin_carries_the_locks_hashes() -> None:
    """pip's --require-hashes (job_entry.py) refuses a file where any pin lacks its hashes."""
    for path in runtime.files().values():
        lines = [line for line in path.read_text().splitlines() if line and line[0] not in "#-"]
        assert lines and all(" --hash=sha256:" in line for line in lines), path.name


def test_job_entry_installs_by_hash_from_the_bundles_wheels_alone(tmp_path: Path) -> None:
    """With wheels/ beside it, job_entry.py's pip reads that folder alone and checks each file
    against the requirement's hash: a wheel whose bytes differ is refused before anything is
    installed, and the job stops naming what it needed."""
    bundle = tmp_path / "code"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "job_entry.py").write_text((PROJECT / "src" / "job_entry.py").read_text())
    wheel = bundle / "wheels" / "offline_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("offline_probe.py", "VENDORED = True\n")
    (bundle / "requirements.txt").write_text(f"offline-probe==1.0 --hash=sha256:{'0' * 64}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    # An index nothing answers on: a pip that asked one would fail differently (no hash named).
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    result = subprocess.run(
        [sys.executable, str(bundle / "job_entry.py"), "json.tool", "--help"],
        cwd=tmp_path,
        env=env | {"PIP_RETRIES": "0", "PIP_TIMEOUT": "2"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stderr[-2000:]  # job_entry.CANNOT_INSTALL
    assert "DO NOT MATCH THE HASHES" in result.stderr, result.stderr[-2000:]
    assert "127.0.0.1" not in result.stderr  # the index was never asked
    assert "from the bundle's wheels/ (no index)" in result.stderr


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


def test_the_job_code_installs_the_platform_library_from_its_own_folder_by_hash(
    tmp_path: Path,
) -> None:
    """The bundle's requirements.txt names the platform library by version and hash and its
    folder by --find-links (read relative to the file): pip, run from elsewhere with no index,
    takes the bundle's wheel, and refuses it once its bytes differ from the lock's."""
    bundle = collect(isolated=False).write(tmp_path / "code")
    lines = (bundle / "requirements.txt").read_text().splitlines()
    platform = [line for line in lines if line.startswith(("--find-links", "mlops-platform=="))]
    assert len(platform) == 2
    (bundle / "platform.txt").write_text("\n".join(platform) + "\n")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    command += ["--no-deps", "--no-index", "--require-hashes", "--disable-pip-version-check"]
    command += ["-r", str(bundle / "platform.txt")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Would install mlops-platform-" in result.stdout
    (wheel,) = (bundle / "platform-wheels").glob("*.whl")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("mlops_platform/tampered.py", "")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr
