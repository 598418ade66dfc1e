"""The error contract of the SageMaker scikit-learn container, checked with that container's code.

On an endpoint, ``inference.py`` runs inside the image's serving stack (sagemaker-containers'
``Transformer`` and Flask ``Worker``), which answers 500 for any exception of a user function. This
test builds a test-only environment with the image's Python and pinned libraries
(``pipelines/image_versions.json``) plus the model's ``code/requirements.txt`` (the runtime
export of ``uv.lock``, the estimator's library among it), which the container pip-installs when
it loads the model's code (sagemaker-containers' ``modules.import_module``), serves the model's
``code/inference.py`` through that stack, and requires every payload to get the same status - and
for a refused payload the same message - as from the local server. It installs from the package
registry on first use (uv's cache makes later runs fast); without Python 3.12 available to uv it
fails and says so.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from packaging.utils import canonicalize_name

import pipelines.offline_install
from {{ cookiecutter.package_name }} import inference
from {{ cookiecutter.package_name }}.data import Schema
from {{ cookiecutter.package_name }}.serve import make_server, serve_in_thread

pytestmark = pytest.mark.slow  # builds a second Python environment on first use

PROJECT = Path(__file__).resolve().parent.parent
IMAGE = json.loads((PROJECT / "pipelines" / "image_versions.json").read_text())
# What `train --bundle-inference-code` puts in the model's code/ folder beside inference.py.
RUNTIME_REQUIREMENTS = PROJECT / "src" / "requirements.txt"
HARNESS = Path(__file__).with_name("container") / "harness.py"
# Outside the project and keyed by the pins, so every checkout and render shares one environment.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sagemaker-image-envs"
# `uv run` names its own binary in UV; a private uv copy (tools/uv.sh) need not be on PATH.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
# Bytecode is written on first import, so later runs start in seconds.
ENV = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}


def _python(version: str) -> str:
    """An interpreter for uv: its own discovery first, then pyenv's versions, else uv's download."""
    found = subprocess.run(
        [UV, "python", "find", version], capture_output=True, text=True, check=False
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    return str(candidates[-1]) if candidates else version


@pytest.fixture(scope="session")
def container_python() -> Iterator[Path]:
    """A virtual environment like the serving container's: the image's Python, its requirements,
    its six, then the model's code/requirements.txt installed over them."""
    pins = "\n".join(
        [
            IMAGE["python"],
            *IMAGE["requirements"],
            *IMAGE["after_requirements"],
            RUNTIME_REQUIREMENTS.read_text(),
        ]
    )
    home = CACHE / f"sklearn-{hashlib.sha256(pins.encode()).hexdigest()[:16]}"
    python = home / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Parallel test runs build it once; the lock is released once it is ready (held for the
    # whole session, it made every other project's suite wait for this one to end).
    with (CACHE / f"{home.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "ready").exists():
            _build(home, python)
    yield python


def _build(home: Path, python: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    requirements = home.with_suffix(".txt")
    requirements.write_text("\n".join(IMAGE["requirements"]) + "\n")
    env = ENV
    steps = [
        [UV, "venv", "--quiet", "--python", _python(IMAGE["python"]), str(home)],
        # The image installs requirements.txt over sagemaker-containers' own (2020) pins, such as
        # Flask 1.1.1; --override makes the resolver take the image's versions the same way.
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "-r",
            str(requirements),
            "--override",
            str(requirements),
        ],
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--reinstall",
            *IMAGE["after_requirements"],
        ],
        # sagemaker-containers runs `pip install -r requirements.txt` of the model's code folder.
        [UV, "pip", "install", "--quiet", "--python", str(python), "-r", str(RUNTIME_REQUIREMENTS)],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            pytest.fail(f"building the container environment failed: {result.stderr[-2000:]}")
    (home / "ready").touch()


def _cases(frame: pd.DataFrame, schema: Schema) -> list[dict[str, Any]]:
    features = frame[schema.feature_names]
    width = len(schema.feature_names)
    good_csv = features.head(3).to_csv(index=False, header=False).encode()
    ones = ["1"] * (width - 1)
    header_csv = features.head(2).to_csv(index=False).encode()
    first = schema.feature_names[0]
    repeated_key = ("{" + f'"{first}": 1, "{first}": 2' + "}").encode()
    bodies: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "/invocations", {"Content-Type": "text/csv"}, good_csv),
        ("POST", "/invocations", {"Content-Type": "text/csv", "Accept": "text/csv"}, good_csv),
        ("POST", "/invocations", {"Content-Type": "text/csv; charset=utf-8"}, good_csv),
        (
            "POST",
            "/invocations",
            {"Content-Type": "application/json"},
            json.dumps({"instances": features.head(2).values.tolist()}).encode(),
        ),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b""),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"1,2,3"),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"\xff\xfe,1"),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, ",".join(["x"] * width).encode()),
        ("POST", "/invocations", {"Content-Type": "application/json"}, b"{oops"),
        ("POST", "/invocations", {"Content-Type": "application/json"}, b'"text"'),
        (
            "POST",
            "/invocations",
            {"Content-Type": "application/json"},
            ("[[" + ",".join([*ones, "7" * 5_000]) + "]]").encode(),
        ),
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv"},
            ",".join([*ones, "7" * 400]).encode(),
        ),
        ("POST", "/invocations", {"Content-Type": "application/x-npy"}, b"\x93NUMPY\x01\x00\xff"),
        # CSV and JSON as people send them: a byte-order mark, another separator, a declared
        # charset (the worker then passes bytes), an unknown one, a repeated JSON key.
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"\xef\xbb\xbf" + header_csv),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, header_csv.replace(b",", b";")),
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv; charset=utf-16"},
            header_csv.decode().encode("utf-16"),
        ),
        ("POST", "/invocations", {"Content-Type": "text/csv; charset=x-nope"}, good_csv),
        ("POST", "/invocations", {"Content-Type": "application/json"}, repeated_key),
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv", "Accept": "application/json;q=0, text/csv"},
            good_csv,
        ),
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv", "Accept": "application/json;q=0, text/csv;q=0"},
            good_csv,
        ),
        ("POST", "/invocations", {"Content-Type": "text/csv", "Accept": "image/png"}, good_csv),
        ("POST", "/invocations", {}, good_csv),  # no Content-Type: the container assumes JSON
        (
            "POST",
            "/invocations",
            {"Content-Type": "text/csv"},
            b"\n".join([good_csv.splitlines()[0]] * (inference.MAX_ROWS + 1)),
        ),
        ("GET", "/ping", {}, b""),
        ("GET", "/invocations", {}, b""),
        ("GET", "/nope", {}, b""),
    ]
    return [
        {
            "method": method,
            "path": path,
            "headers": headers,
            "body_b64": base64.b64encode(body).decode("ascii"),
        }
        for method, path, headers, body in bodies
    ]


@pytest.fixture()
def local_server(model_dir: Path) -> Iterator[tuple[str, int]]:
    server = make_server(model_dir, "127.0.0.1", 0)
    serve_in_thread(server)
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


def _local(server: tuple[str, int], case: dict[str, Any]) -> dict[str, Any]:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        body = base64.b64decode(case["body_b64"])
        connection.request(
            case["method"],
            case["path"],
            body=body if case["method"] == "POST" else None,
            headers=case["headers"],
        )
        response = connection.getresponse()
        return {
            "status": response.status,
            "content_type": response.getheader("Content-Type"),
            "allow": response.getheader("Allow"),
            "body_b64": base64.b64encode(response.read()).decode("ascii"),
        }
    finally:
        connection.close()


def test_every_payload_gets_the_same_status_in_the_container_and_locally(
    container_python: Path,
    model_dir: Path,
    local_server: tuple[str, int],
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
) -> None:
    # The model artifact as SageMaker unpacks it: the model files and code/inference.py, the file
    # `train --bundle-inference-code` copies.
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    (model / "code").mkdir(exist_ok=True)
    shutil.copy(inference.__file__, model / "code" / "inference.py")
    shutil.copy(RUNTIME_REQUIREMENTS, model / "code" / "requirements.txt")
    cases = _cases(clean_frame, schema)
    result = subprocess.run(
        [str(container_python), str(HARNESS), str(tmp_path)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    in_container = json.loads(result.stdout)
    for case, container in zip(cases, in_container, strict=True):
        local = _local(local_server, case)
        what = (case["method"], case["path"], case["headers"])
        assert container["status"] == local["status"], what
        assert container["status"] < 500, what
        if case["path"] == "/invocations" and case["method"] == "POST":
            # transform_fn's own answer: byte for byte the same body and type.
            assert container["body_b64"] == local["body_b64"], what
            assert container["content_type"] == local["content_type"], what
        if container["status"] == 405:
            assert "POST" in container["allow"] and local["allow"] == "POST"
    statuses = sorted({answer["status"] for answer in in_container})
    assert statuses == [200, 400, 404, 405, 406, 413, 415]


# --- the model's start under network isolation -------------------------------------------------


def _offline_pip(tmp_path: Path) -> dict[str, str]:
    """pip with no network: an index on a loopback port nothing listens on, no configured
    indexes or links, no retries (SageMaker's network isolation: no route to any index)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    quiet = {k: v for k, v in ENV.items() if not k.startswith(("PIP_", "UV_"))}
    return quiet | {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _image_overlay(container_python: Path, tmp_path: Path) -> Path:
    """A throwaway environment that sees the container environment's packages (a site directory)
    and takes what pip installs, so the shared environment stays as the image ships it."""
    overlay = tmp_path / "overlay"
    subprocess.run(
        [UV, "venv", "--quiet", "--python", str(container_python), str(overlay)],
        check=True,
        env=ENV,
    )
    (site,) = (container_python.parent.parent / "lib").glob("python*/site-packages")
    (own,) = (overlay / "lib").glob("python*/site-packages")
    # addsitedir also runs the .pth files there (setuptools' distutils shim among them).
    (own / "_image.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    return overlay / "bin" / "python"


def _setuptools_wheel() -> Path:
    """A setuptools wheel from the package registry on first use (cached beside the
    environments): what a vendoring build puts in code/ for pip's isolated build of code/."""
    folder = CACHE / "wheels"
    found = sorted(folder.glob("setuptools-*-py3-none-any.whl"))
    if found:
        return found[-1]
    result = subprocess.run(
        [
            *(UV, "run", "--no-project", "--with", "pip", "--", "python", "-m", "pip"),
            *("download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(folder)),
            "setuptools",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    found = sorted(folder.glob("setuptools-*-py3-none-any.whl"))
    if not found:
        pytest.fail(f"downloading a setuptools wheel failed: {result.stderr[-2000:]}")
    return found[-1]


def _probe_wheel(folder: Path) -> str:
    """A one-module wheel of a package the image does not have, and its pin."""
    name = "offline_probe-1.0-py3-none-any.whl"
    files = {
        "offline_probe.py": "VENDORED = True\n",
        "offline_probe-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: offline-probe\nVersion: 1.0\n"
        ),
        "offline_probe-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256="
        + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")
        + f",{len(text.encode())}"
        for path, text in files.items()
    ]
    files["offline_probe-1.0.dist-info/RECORD"] = "\n".join(
        [*record, "offline_probe-1.0.dist-info/RECORD,,"]
    )
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return "offline-probe==1.0"


def _as_image(python: Path) -> pipelines.offline_install.Image:
    """The environment described the way pipelines.offline_install describes the image: its
    Python and the exact version of everything installed (here the image's libraries plus the
    locked runtime)."""
    listed = subprocess.run(
        [
            str(python),
            "-c",
            "import json, sys, importlib.metadata as m; print(json.dumps(["
            "'.'.join(map(str, sys.version_info[:2])),"
            "{d.metadata['Name']: d.version for d in m.distributions()}]))",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    version, installed = json.loads(listed.stdout)
    return pipelines.offline_install.Image(
        python=version, pinned={canonicalize_name(k): v for k, v in installed.items()}
    )


def _code_files(code: Path) -> list[str]:
    return [path.relative_to(code).as_posix() for path in code.rglob("*") if path.is_file()]


def test_under_network_isolation_the_model_starts_offline_or_the_deploy_refuses_it(
    container_python: Path,
    model_dir: Path,
    clean_frame: pd.DataFrame,
    schema: Schema,
    tmp_path: Path,
) -> None:
    """The image's own install step (sagemaker-containers) with no network, and the deploy's
    verdict on the same code/ (pipelines/offline_install.py): the code/ training ships today dies
    at start and is refused; a code/ carrying the wheels the environment lacks starts and is
    accepted. The verdict is asked for this environment (the image's libraries with the locked
    runtime already installed) and, for the shipped code/, for the image as recorded."""
    offline = _offline_pip(tmp_path)
    python = _image_overlay(container_python, tmp_path)
    emulated = _as_image(python)
    case = _cases(clean_frame, schema)[0]  # a CSV prediction
    for variant in ("shipped", "vendored"):
        base = tmp_path / variant
        model = base / "model"
        shutil.copytree(model_dir, model)
        code = model / "code"
        code.mkdir(exist_ok=True)
        shutil.copy(inference.__file__, code / "inference.py")
        requirements = RUNTIME_REQUIREMENTS.read_text()
        if variant == "vendored":
            (code / "wheels").mkdir()
            shutil.copy(_setuptools_wheel(), code / "wheels")
            probe = _probe_wheel(code / "wheels")
            requirements = f"--no-index\n--find-links wheels\n{requirements}{probe}\n"
        (code / "requirements.txt").write_text(requirements)
        verdict = pipelines.offline_install.blockers(requirements, _code_files(code), emulated)
        result = subprocess.run(
            [str(python), str(HARNESS), str(base), "--install"],
            input=json.dumps([case]),
            capture_output=True,
            text=True,
            check=False,
            cwd=base,
            env=offline,
        )
        if variant == "shipped":
            # The container would exit before serving; the deploy refuses this model instead.
            assert result.returncode != 0
            assert "InstallModuleError" in result.stderr
            assert "setuptools" in result.stderr
            assert verdict == [
                "setuptools>=40.8.0 (pip builds code/ in an isolated environment)",
                "requirements.txt lacks --no-index and --find-links",
            ]
            recorded = pipelines.offline_install.load_image()
            assert "pandas==" in " ".join(
                pipelines.offline_install.blockers(requirements, _code_files(code), recorded)
            )
        else:
            assert result.returncode == 0, result.stderr[-3000:]
            # pip's output comes first (the image's install step), the answers last.
            *install, answers = result.stdout.strip().splitlines()
            assert "Successfully installed inference-1.0.0 offline-probe-1.0" in install
            (answer,) = json.loads(answers)
            assert answer["status"] == 200
            assert verdict == []
