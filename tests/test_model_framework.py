"""model_framework: each choice renders its own estimator, lock and runtime, nothing of the other.

What the XGBoost and LightGBM locks install on each platform is asked of uv itself (`uv sync
--locked --dry-run --python-platform ...`, offline), not read back from the lock file.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE, user_shell_env

FRAMEWORKS = ("scikit-learn", "xgboost", "lightgbm")
# `uv run` names its own binary in UV; a bare `uv` may be a pyenv shim.
UV = os.environ.get("UV") or "uv"
# The wheel of XGBoost each platform gets from the rendered lock: the CPU-only build where PyPI
# has one (xgboost-cpu publishes manylinux x86_64/aarch64 and Windows wheels), xgboost on macOS,
# whose wheels carry no CUDA.
XGBOOST_WHEEL = {
    "x86_64-unknown-linux-gnu": "xgboost-cpu",
    "aarch64-unknown-linux-gnu": "xgboost-cpu",
    "x86_64-pc-windows-msvc": "xgboost-cpu",
    "aarch64-apple-darwin": "xgboost",
    "x86_64-apple-darwin": "xgboost",
}
# LightGBM publishes one wheel per platform, CPU-only everywhere (its Linux and Windows wheels
# also hold the OpenCL code, loaded only for device_type=gpu; they depend on no GPU library).
LIGHTGBM_PLATFORMS = (*XGBOOST_WHEEL, "aarch64-pc-windows-msvc")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A default project per framework (hooks included: pruning decides what is kept)."""
    projects = {}
    with pytest.MonkeyPatch.context() as patch:  # cookiecutter's replay files stay out of ~
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        for framework in FRAMEWORKS:
            output = tmp_path_factory.mktemp(framework)
            projects[framework] = Path(
                cookiecutter(
                    str(TEMPLATE),
                    no_input=True,
                    output_dir=str(output),
                    extra_context={"model_framework": framework},
                )
            )
    return projects


def would_install(project: Path, platform: str, *groups: str) -> str:
    """What `uv sync --locked` would install from the project's lock on ``platform`` (offline)."""
    environment = project.parent / f"env-{platform}"
    result = subprocess.run(
        [
            *(UV, "sync", "--locked", "--offline", "--dry-run", "--no-install-project"),
            *("--python-platform", platform, "--python", sys.executable),
            *(groups or ("--no-default-groups",)),
        ],
        cwd=project,
        env=user_shell_env(UV_PROJECT_ENVIRONMENT=str(environment)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def installed_names(report: str) -> set[str]:
    return {
        line.split()[1].split("==")[0]
        for line in report.splitlines()
        if line.lstrip().startswith("+ ")
    }


@pytest.mark.parametrize("platform", XGBOOST_WHEEL)
def test_the_xgboost_lock_installs_a_cpu_only_xgboost_on_every_platform(
    rendered: dict[str, Path], platform: str
) -> None:
    names = installed_names(would_install(rendered["xgboost"], platform))
    wheel = XGBOOST_WHEEL[platform]
    (other,) = {"xgboost", "xgboost-cpu"} - {wheel}
    assert wheel in names and other not in names  # both install the same `xgboost` package
    assert {"scikit-learn", "pandas", "numpy"} <= names
    assert not [name for name in names if name.startswith("nvidia")], names


@pytest.mark.parametrize("platform", LIGHTGBM_PLATFORMS)
def test_the_lightgbm_lock_installs_lightgbm_without_gpu_libraries_on_every_platform(
    rendered: dict[str, Path], platform: str
) -> None:
    names = installed_names(would_install(rendered["lightgbm"], platform))
    assert {"lightgbm", "scikit-learn", "pandas", "numpy", "scipy"} <= names
    assert not [n for n in names if n.startswith(("nvidia", "cuda", "xgboost"))], names


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_gpu_library_in_any_group_on_linux(rendered: dict[str, Path], framework: str) -> None:
    names = installed_names(
        would_install(rendered[framework], "x86_64-unknown-linux-gnu", "--all-groups")
    )
    assert {"dvc", "sagemaker", "pytest"} <= names  # every group was asked for
    assert not [n for n in names if n.startswith(("nvidia", "cuda"))], names
    assert ("xgboost-cpu" in names) is (framework == "xgboost")
    assert "xgboost" not in names
    assert ("lightgbm" in names) is (framework == "lightgbm")


def hyperparameter_names(estimator: Path) -> set[str]:
    """The keys of ``HYPERPARAMETERS`` in a rendered estimator.py, read without importing it."""
    for node in ast.parse(estimator.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "HYPERPARAMETERS":
            assert isinstance(node.value, ast.Dict)
            return {ast.literal_eval(key) for key in node.value.keys if key is not None}
    raise AssertionError(f"no HYPERPARAMETERS in {estimator}")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_params_yaml_names_the_frameworks_own_hyperparameters(
    rendered: dict[str, Path], framework: str
) -> None:
    project = rendered[framework]
    package = project / "src" / project.name.replace("-", "_")
    params: dict[str, Any] = yaml.safe_load((project / "params.yaml").read_text())
    accepted = hyperparameter_names(package / "estimator.py")
    assert set(params["train"]) == accepted
    own = {
        "scikit-learn": {"max_iter", "l2_regularization"},
        "xgboost": {"n_estimators", "reg_lambda", "min_child_weight", "tree_method"},
        "lightgbm": {"n_estimators", "num_leaves", "min_child_samples", "subsample_freq"},
    }[framework]
    assert own <= accepted


# The library each framework adds to the runtime (scikit-learn's is in every project).
ADDED_LIBRARY = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


def test_only_the_chosen_frameworks_files_are_rendered(rendered: dict[str, Path]) -> None:
    for framework, project in rendered.items():
        files = [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts]
        names = [str(path.relative_to(project)) for path in files]
        assert not [n for n in names for f in FRAMEWORKS if f".{f}." in n], names
        texts = [path.read_text(errors="ignore").lower() for path in files]
        for other, library in ADDED_LIBRARY.items():
            mentions = [n for n, text in zip(names, texts, strict=True) if library in text]
            if other != framework:
                assert mentions == [], (framework, library, mentions)
            else:
                assert {"uv.lock", "pyproject.toml", "src/requirements.txt"} <= set(mentions)
        # The job code's requirements are the runtime export of the project's own lock.
        requirements = (project / "src" / "requirements.txt").read_text()
        assert ("xgboost-cpu==" in requirements) is (framework == "xgboost")
        assert ("lightgbm==" in requirements) is (framework == "lightgbm")


@pytest.mark.skipif(sys.platform != "linux", reason="the message names Linux's OpenMP package")
def test_a_missing_openmp_runtime_names_what_to_install(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    """LightGBM's wheels link to the system's OpenMP runtime (libgomp.so.1 on Linux) without
    bundling it; where it is missing, importing the estimator says what to install rather than
    only which shared library failed. The failure is the one ctypes raises loading the library."""
    project = rendered["lightgbm"]
    fake = tmp_path / "lightgbm"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise OSError('libgomp.so.1: cannot open shared object file: No such file or directory')\n"
    )
    estimator = project / "src" / project.name.replace("-", "_") / "estimator.py"
    result = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])", str(estimator)],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "ImportError: lightgbm cannot load its OpenMP runtime; install libgomp.so.1 "
        "(Debian, Ubuntu: apt-get install libgomp1; Fedora: dnf install libgomp)"
    )
