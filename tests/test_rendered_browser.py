"""What people look at, opened in a real browser: the monitoring report, the champion/challenger
comparison report and the MLflow UI of a rendered project, in headless Chromium.

Each page must show what it is about (the run's gate metric, the report's headline) and every
image on it must have loaded (``naturalWidth > 0``: no broken image). Screenshots are kept under
``build/browser/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tools.ports import free_port, wait_for_port

from .browser import chromium_path, headless_chromium
from .conftest import bake, user_shell_env
from .test_rendered_project import make

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "browser"

# Serve the trained model with itself as a shadow challenger, send requests, and stop: the
# captures `make compare` reads (the same calls as the project's test_compare).
SHADOW_TRAFFIC = textwrap.dedent(
    """
    import http.client, sys, threading
    from pathlib import Path
    import pandas as pd
    from {package}.serve import make_server
    server = make_server(Path("models"), "127.0.0.1", 0, capture_dir=Path(sys.argv[1]),
                         challenger_dir=Path("models"), mode="shadow")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = pd.read_csv("data/processed/test/test.csv")
    features = [c for c in rows.columns if c != sys.argv[2]]
    body = rows[features].head(30).to_csv(index=False, header=False).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    for line in body.splitlines():
        connection.request("POST", "/invocations", line, {{"Content-Type": "text/csv"}})
        connection.getresponse().read()
    server.rollout.drain()
    server.shutdown()
    """
)

DRIFTED_BATCH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pandas as pd
    rows = pd.read_csv("data/processed/test/test.csv").drop(columns=[sys.argv[1]])
    first = rows.columns[0]
    rows[first] = rows[first] * 3 + rows[first].std() * 5
    Path("build").mkdir(exist_ok=True)
    rows.to_csv("build/drifted.csv", index=False)
    """
)


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=project, env=user_shell_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def check_page(state: dict[str, Any], url: str, *expected: str) -> None:
    assert state, f"{url} never became ready"
    for text in expected:
        assert text in state["text"], f"{url} does not show {text!r}:\n{state['text'][:2000]}"
    images = state["images"]
    assert images, f"{url} shows no image"
    broken = [image for image in images if not image["complete"] or image["width"] == 0]
    assert not broken, f"{url}: broken images {broken}"


def mlflow_api(base: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/{path}", timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


@pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian's chromium is not installed; `make browser` installs it (make test does)",
)
def test_reports_and_the_mlflow_ui_render_in_headless_chromium(cookies: Any) -> None:
    project = bake(cookies, project_name="Browser Check")
    for target in ("setup", "repro"):
        result = make(project, target)
        assert result.returncode == 0, f"make {target}:\n{result.stderr[-3000:]}"
    package = "browser_check"
    recorded = json.loads((project / "reports" / "mlflow_run.json").read_text())
    scores = json.loads((project / "reports" / "scores.json").read_text())

    # The monitoring report of a batch whose first feature drifted: it plots that feature. (make
    # monitor exits 1 on drift, by design; the report is written either way.)
    target = json.loads((project / f"src/{package}/schema.json").read_text())["target"]["name"]
    python = str(project / ".venv" / "bin" / "python")
    run(project, python, "-c", DRIFTED_BATCH, str(target))
    subprocess.run(
        ["make", "monitor", "DATA=build/drifted.csv"],
        cwd=project,
        env=user_shell_env(),
        capture_output=True,
        check=False,
    )
    monitor_report = project / "reports" / "monitor" / "report.html"
    # The comparison report, from shadow traffic the project's own server captured.
    script = SHADOW_TRAFFIC.format(package=package)
    run(project, python, "-c", script, str(project / "data" / "capture"), str(target))
    run(project, "make", "compare", "LABELLED_DATA=data/processed/test/test.csv")
    compare_report = project / "reports" / "compare" / "report.html"

    port = free_port()
    ui = subprocess.Popen(
        ["make", "mlflow-ui", f"MLFLOW_PORT={port}"],
        cwd=project,
        env=user_shell_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # make, uv and the server in one group, stopped together
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        assert wait_for_port(port, timeout=300), "make mlflow-ui did not start"
        base = f"http://127.0.0.1:{port}"
        run_info = mlflow_api(base, f"runs/get?run_id={recorded['run_id']}")["run"]
        gate_metric = next(
            tag["value"] for tag in run_info["data"]["tags"] if tag["key"] == "gate.metric"
        )
        run_name = run_info["info"]["run_name"]
        experiment = f"{base}/#/experiments/{recorded['experiment_id']}"
        run_page = f"{experiment}/runs/{recorded['run_id']}"
        plot = "confusion_matrix.png" if "accuracy" in scores else "predicted_vs_actual.png"
        with headless_chromium(str(chromium_path()), free_port()) as page:
            state = page.visit(monitor_report.as_uri(), screenshot=SCREENSHOTS / "monitor.png")
            check_page(state, "the monitoring report", "Data monitor:", "PSI")
            state = page.visit(compare_report.as_uri(), screenshot=SCREENSHOTS / "compare.png")
            check_page(state, "the comparison report", "Champion and challenger")
            # The experiment's runs: the run is listed by its name.
            state = page.visit(
                f"{experiment}/runs",
                ready=f"document.body.innerText.includes({json.dumps(run_name)})",
                screenshot=SCREENSHOTS / "mlflow-experiment.png",
            )
            assert state, f"the experiment page never listed the run {run_name}"
            # The run: its gate metric with the value evaluation wrote.
            shown = repr(scores[gate_metric])
            state = page.visit(
                run_page,
                ready=f"document.body.innerText.includes({json.dumps(shown)})",
                screenshot=SCREENSHOTS / "mlflow-run.png",
            )
            assert state and gate_metric in state["text"], f"the run page never showed {shown}"
            # A plot among the run's artifacts, loaded (the viewer shows it from a blob: URL).
            state = page.visit(
                f"{run_page}/artifacts/plots/{plot}",
                ready="Array.from(document.images).some(i => i.src.startsWith('blob:'))",
                screenshot=SCREENSHOTS / "mlflow-plot.png",
            )
            check_page(state, f"the run's {plot}")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=30)
