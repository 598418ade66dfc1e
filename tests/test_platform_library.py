"""The platform library (mlops-platform/) as the rendered project receives it.

The project carries the library's wheel (src/platform-wheels/), locked by hash in every
framework's lock and named by version in the requirements the SageMaker jobs install. These tests
keep that copy honest: it is the wheel the working tree builds (so every template test that runs
a rendered project runs the library of this checkout), and each lock pins exactly its bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from template_files import VARIANT_CHOICES, variant_path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "mlops-platform"
PROJECT = ROOT / "{{cookiecutter.project_slug}}"
CARRIED = PROJECT / "src" / "platform-wheels"
UV = os.environ.get("UV") or "uv"


def carried_wheel() -> Path:
    (wheel,) = CARRIED.glob("*.whl")  # exactly one version at a time
    return wheel


def test_the_carried_wheel_is_a_fresh_build_of_the_working_tree(tmp_path: Path) -> None:
    subprocess.run(
        [UV, "build", "--wheel", "--quiet", str(LIBRARY), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (fresh,) = tmp_path.glob("*.whl")
    carried = carried_wheel()
    assert fresh.name == carried.name
    assert fresh.read_bytes() == carried.read_bytes(), (
        "src/platform-wheels/ holds another build of mlops-platform: run `make platform-wheel`, "
        "then `make lock`"
    )


@pytest.mark.parametrize("framework", VARIANT_CHOICES["model_framework"])
def test_each_lock_pins_the_carried_wheel_by_hash(framework: str) -> None:
    wheel = carried_wheel()
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = tomllib.loads((PROJECT / variant_path("uv.lock", framework)).read_text())
    (package,) = [p for p in lock["package"] if p["name"] == "mlops-platform"]
    assert package["source"] == {"path": f"src/platform-wheels/{wheel.name}"}
    assert package["wheels"] == [{"filename": wheel.name, "hash": f"sha256:{digest}"}], (
        f"uv.{framework}.lock pins another mlops-platform wheel: run `make lock`"
    )
    # What the jobs install: the library by version and hash, found in the folder beside the file.
    requirements = (PROJECT / variant_path("src/requirements.txt", framework)).read_text()
    assert "--find-links platform-wheels\n" in requirements
    version = package["version"]
    assert f"mlops-platform=={version} --hash=sha256:{digest}\n" in requirements


def test_the_project_depends_on_a_compatible_release_from_its_carried_wheel() -> None:
    """``~=X.Y.Z`` of the carried version, its source the carried file (the template's
    pyproject.toml is Jinja, so it is read as text)."""
    wheel = carried_wheel()
    version = wheel.name.split("-")[1]
    pyproject = (PROJECT / "pyproject.toml").read_text()
    assert f'"mlops-platform~={version}"' in pyproject
    assert f'mlops-platform = {{ path = "src/platform-wheels/{wheel.name}" }}' in pyproject
