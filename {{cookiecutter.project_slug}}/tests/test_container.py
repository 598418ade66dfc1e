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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pipelines.offline_install
from pipelines import code_bundle
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


def _environment(runtime: bool) -> Path:
    """A virtual environment like the serving container's: the image's Python, its requirements,
    its six, and with ``runtime`` the model's locked runtime installed over them."""
    pins = "\n".join(
        [
            IMAGE["python"],
            *IMAGE["requirements"],
            *IMAGE["after_requirements"],
            RUNTIME_REQUIREMENTS.read_text() if runtime else "",
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
            _build(home, python, runtime)
    return python


@pytest.fixture(scope="session")
def container_python() -> Path:
    """The image with the locked runtime already installed (the payload contract)."""
    return _environment(runtime=True)


@pytest.fixture(scope="session")
def image_python() -> Path:
    """The image as it ships: what a job or a model starts on."""
    return _environment(runtime=False)


def _build(home: Path, python: Path, runtime: bool) -> None:
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
    ]
    if runtime:
        # sagemaker-containers runs `pip install -r requirements.txt` of the model's code folder.
        runtime_install = ["-r", str(RUNTIME_REQUIREMENTS)]
        steps.append([UV, "pip", "install", "--quiet", "--python", str(python), *runtime_install])
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


# --- the job's and the model's start under network isolation ------------------------------------


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


def _image_overlay(image_python: Path, folder: Path) -> Path:
    """A throwaway environment that sees the image environment's packages (a site directory)
    and takes what pip installs, so the shared environment stays as the image ships it."""
    subprocess.run(
        [UV, "venv", "--quiet", "--python", str(image_python), str(folder)],
        check=True,
        env=ENV,
    )
    (site,) = (image_python.parent.parent / "lib").glob("python*/site-packages")
    (own,) = (folder / "lib").glob("python*/site-packages")
    # addsitedir also runs the .pth files there (setuptools' distutils shim among them).
    (own / "_image.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    return folder / "bin" / "python"


def _code_files(code: Path) -> list[str]:
    return [path.relative_to(code).as_posix() for path in code.rglob("*") if path.is_file()]


def _train_job(python: Path, bundle: Path, model: Path, env: dict[str, str]) -> Any:
    """The training step's container command: job_entry.py of the code channel, as SageMaker
    runs it (``python3 job_entry.py <package>.train ... --bundle-inference-code``)."""
    package = inference.__name__.split(".")[0]
    return subprocess.run(
        [
            *(str(python), str(bundle / "job_entry.py"), f"{package}.train"),
            *("--train-dir", str(PROJECT / "data" / "raw"), "--model-dir", str(model)),
            "--bundle-inference-code",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=bundle.parent,
        env=env,
    )


def test_under_network_isolation_the_job_and_the_model_install_with_no_index(
    image_python: Path, clean_frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    """On the image as it ships, with pip's index dead: the training job's entry installs the
    locked runtime from the bundle's wheels (by hash) and trains; the model it writes installs
    its code/ with the image's own install step (sagemaker-containers) and answers; the deploy's
    offline-start check accepts that code/. Without the wheels the same job stops at its start."""
    offline = _offline_pip(tmp_path)

    plain = code_bundle.collect(isolated=False).write(tmp_path / "plain" / "code")
    python = _image_overlay(image_python, tmp_path / "plain" / "env")
    stopped = _train_job(python, plain, tmp_path / "plain" / "model", offline)
    assert stopped.returncode == 3, stopped.stderr[-3000:]  # job_entry.CANNOT_INSTALL
    assert "could not install the locked versions" in stopped.stderr

    bundle = code_bundle.collect(isolated=True)
    assert any(wheel.filename.startswith("pandas-") for wheel in bundle.wheels)
    code_input = bundle.write(tmp_path / "job" / "code")
    python = _image_overlay(image_python, tmp_path / "job" / "env")
    model = tmp_path / "serve" / "model"
    trained = _train_job(python, code_input, model, offline)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "installing the locked runtime" in trained.stderr  # the image lacked them

    code = model / "code"
    requirements = (code / "requirements.txt").read_text()
    assert requirements.startswith("--no-index\n--find-links wheels\n")
    recorded = pipelines.offline_install.load_image()
    assert pipelines.offline_install.blockers(requirements, _code_files(code), recorded) == []

    served = _image_overlay(image_python, tmp_path / "serve" / "env")
    result = subprocess.run(
        [str(served), str(HARNESS), str(model.parent), "--install"],
        input=json.dumps([_cases(clean_frame, schema)[0]]),  # a CSV prediction
        capture_output=True,
        text=True,
        check=False,
        cwd=model.parent,
        env=offline,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # pip's output comes first (the image's install step), the answers last.
    *install, answers = result.stdout.strip().splitlines()
    assert any("Successfully installed" in line and "pandas-3" in line for line in install)
    (answer,) = json.loads(answers)
    assert answer["status"] == 200
