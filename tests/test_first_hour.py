"""A new user's first hour: finding or installing uv, `make help`, the first commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from .conftest import TEMPLATE, bake, copy_template, user_shell_env

# What pip prints when PEP 668 forbids installing into the interpreter.
PEP_668_REFUSAL = "externally-managed-environment"


def make(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args],
        cwd=cwd,
        env=user_shell_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def externally_managed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away copy of this interpreter whose stdlib carries PEP 668's EXTERNALLY-MANAGED.

    The binary is copied (Python finds its prefix from the executable's real location) and the
    standard library is linked entry by entry, so the marker lands in the copy's own stdlib folder,
    where pip looks for it. Its site-packages holds only pip, like a distribution's Python.
    """
    root = tmp_path_factory.mktemp("debian-like-python")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix)
    (root / "bin").mkdir()
    binary = root / "bin" / version
    shutil.copy2(Path(base / "bin" / version).resolve(), binary)
    (root / "bin" / "python3").symlink_to(version)
    stdlib = Path(sysconfig.get_paths(vars={"base": str(base)})["stdlib"])
    copy = root / "lib" / version
    (copy / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (copy / entry.name).symlink_to(entry)
    for entry in (stdlib / "site-packages").glob("pip*"):
        (copy / "site-packages" / entry.name).symlink_to(entry)
    (copy / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This Python is managed by the system (test copy).\n"
    )
    refused = subprocess.run(
        [str(binary), "-m", "pip", "install", "--dry-run", "uv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and PEP_668_REFUSAL in refused.stderr, refused.stderr
    return root / "bin"


def plain_machine_env(python_bin: Path, home: Path) -> dict[str, str]:
    """PATH with only the externally managed Python and the system tools: no uv, no pyenv."""
    return user_shell_env(
        PATH=f"{python_bin}:/usr/bin:/bin",
        HOME=str(home),
        # Keep uv's package cache warm (a cold cache would download every wheel again).
        UV_CACHE_DIR=subprocess.run(
            ["uv", "cache", "dir"], capture_output=True, text=True, check=True
        ).stdout.strip(),
    )


@pytest.mark.slow
def test_template_makefile_bootstraps_uv_on_an_externally_managed_python(
    externally_managed_python: Path, tmp_path: Path
) -> None:
    assert shutil.which("uv", path="/usr/bin:/bin") is None, "the system itself has uv"
    env = plain_machine_env(externally_managed_python, tmp_path / "home")
    result = make(TEMPLATE, "uv", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    private = tmp_path / "home" / ".cache" / "uv-bootstrap" / "bin" / "uv"
    assert f"uv: {private} (uv " in result.stdout
    again = make(TEMPLATE, "uv", env=env)  # found, not reinstalled
    assert "installing" not in again.stderr and f"uv: {private}" in again.stdout


@pytest.mark.slow
def test_rendered_setup_works_on_an_externally_managed_python(
    cookies: Any, externally_managed_python: Path, tmp_path: Path
) -> None:
    """`make setup` from a plain shell: uv bootstrapped privately, environment installed."""
    project = bake(cookies)
    env = plain_machine_env(externally_managed_python, tmp_path / "home")
    result = make(project, "setup", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "installing it into" in result.stderr
    assert (project / ".venv" / "bin" / "dvc").exists()


@pytest.mark.skipif(shutil.which("pyenv") is None, reason="needs pyenv")
def test_uv_is_found_when_pyenv_shims_it_for_another_version(cookies: Any) -> None:
    """uv pip-installed into one pyenv Python; the project's .python-version names another."""
    installed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
    having_uv = subprocess.run(["pyenv", "whence", "uv"], capture_output=True, text=True)
    others = [
        v
        for v in installed.stdout.split()
        if v.startswith(("3.12", "3.13")) and v not in having_uv.stdout.split()
    ]
    if not having_uv.stdout.strip() or not others:
        pytest.skip("needs a pyenv Python with uv and a 3.12/3.13 one without it")
    project = bake(cookies, python_version=".".join(others[0].split(".")[:2]))
    shim = subprocess.run(
        ["uv", "--version"], cwd=project, env=user_shell_env(), capture_output=True, text=True
    )
    assert shim.returncode != 0  # the situation of the issue: "pyenv: uv: command not found"
    result = make(project, "uv")
    assert result.returncode == 0, result.stderr
    found = result.stdout.split("uv: ", 1)[1].split(" (", 1)[0]
    assert subprocess.run([found, "--version"], capture_output=True).returncode == 0


@pytest.mark.parametrize("overrides", [(), ("PORT=9000", "DATA=data/capture")])
def test_make_help_shows_values_not_variables(cookies: Any, overrides: tuple[str, ...]) -> None:
    project = bake(cookies)
    result = make(project, "help", *overrides)
    assert result.returncode == 0, result.stderr
    assert "$(" not in result.stdout
    port, data = ("9000", "data/capture") if overrides else ("8080", "data/processed/test")
    assert f"http://127.0.0.1:{port}" in result.stdout
    assert f"Score {data}" in result.stdout
    template_help = make(TEMPLATE, "help")
    assert template_help.returncode == 0 and "$(" not in template_help.stdout


@pytest.mark.slow
def test_make_demo_prints_a_summary_and_logs_everything(tmp_path: Path) -> None:
    """From a fresh clone (no .venv): the template's own install goes to the log too."""
    template = copy_template(tmp_path / "template")
    demo_dir = tmp_path / "demo"
    result = make(template, "--no-print-directory", "-s", "demo", f"DEMO_DIR={demo_dir}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # What the terminal shows, both streams: was ~300 lines, every installed package (the
    # template's ~200 on stderr before the first step), every prediction.
    assert len(lines) + len(result.stderr.splitlines()) <= 25, result.stdout + result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(" + ")]
    assert sum(line.startswith("ok  ") for line in lines) == 6
    assert any(line.strip().startswith("quality gate passed") for line in lines)
    assert any(line.strip().startswith("monitor passed") for line in lines)
    log = (demo_dir / "demo.log").read_text()
    assert sum(line.startswith(" + ") for line in log.splitlines()) > 100  # the whole install
    assert f"whole output: {demo_dir / 'demo.log'}" in lines[-1]
