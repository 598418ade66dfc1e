"""Benchmarks of the template and of a rendered project. Prints a table; writes JSON.

    make bench                       # everything but the slow optional parts
    python bench/run.py --full-suite --compare-pip

Figures are medians of several runs with min and max. Render time is compared, in the same run,
with drivendata's cookiecutter-data-science: its ``ccds`` command, installed from the registry into
its own uv environment, renders a local copy of its template (``--ccds-template``; by default
``../shared/anchors/cookiecutter-data-science`` beside the repository), interleaved with our
renders so that load from other processes falls on both alike.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.ports import free_port, wait_for_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")
} | {"NO_COLOR": "1"}
BIN = Path(sys.executable).parent
SHADOW_ROW = "4b serving: the champion alone vs with a shadow challenger (make serve MODE=shadow)"
PIPELINE_LOCAL_ROW = "3b make pipeline-local beside dvc repro --force (s, interleaved)"


def run(
    command: list[str],
    cwd: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> float:
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env=env or ENV,
        check=check,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


def repeat(times: int, action: Callable[[], float]) -> dict[str, float]:
    return stats([action() for _ in range(times)])


def render_ours(output: Path, *answers: str, template: Path = ROOT) -> float:
    shutil.rmtree(output, ignore_errors=True)
    return run(
        [str(BIN / "cookiecutter"), "--no-input", str(template), "-o", str(output), *answers]
    )


def ccds_environment(work: Path) -> Path | None:
    venv = work / "ccds-venv"
    try:
        run(["uv", "venv", "--quiet", str(venv)])
        run(
            [
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                "cookiecutter-data-science",
            ],
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return venv / "bin" / "ccds"


CCDS_ANCHOR = Path("shared", "anchors", "cookiecutter-data-science")


def default_ccds_template() -> Path:
    """The copy beside the repository; from a git worktree, beside the main checkout as well."""
    beside = [ROOT.parent]
    common = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if common:
        beside.append(Path(common).parent.parent)
    candidates = [folder / CCDS_ANCHOR for folder in beside]
    return next((path for path in candidates if path.is_dir()), candidates[0])


def render_reference(ccds: Path, template: Path, output: Path) -> float:
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    return run([str(ccds), "--no-input", str(template), "-o", str(output)])


def with_cpu(render: Callable[[], float]) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the render and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = render()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def render_side_by_side(
    work: Path, runs: int, ccds_template: Path, variants: dict[str, Path] | None = None
) -> dict[str, Any]:
    """Our default render against ccds rendering its own default, interleaved run by run, and
    any other folders of this template (``--render-variant``: another commit, or the template
    without a mechanism) in the same rounds.

    Alternating the renders spreads the load of other processes on the machine over all of them;
    CPU time is reported beside wall time because it is the figure such load disturbs least.
    """
    variants = variants or {}
    has_template = (ccds_template / "ccds.json").is_file()
    ccds = ccds_environment(work) if has_template else None
    renders: dict[str, Callable[[], float]] = {"this template": lambda: render_ours(work / "ours")}
    for name, folder in variants.items():
        renders[name] = functools.partial(render_ours, work / f"variant-{name}", template=folder)
    if ccds is None:
        why = (
            "uv could not install cookiecutter-data-science"
            if has_template
            else f"no cookiecutter-data-science template at {ccds_template} (--ccds-template)"
        )
        return {name: repeat(runs, render) for name, render in renders.items()} | {"ccds": why}
    reference: Path = ccds
    ccds_name = f"ccds {ccds_version(ccds)}, its default"
    renders[ccds_name] = lambda: render_reference(reference, ccds_template, work / "ccds")
    # One unmeasured render each first: the fresh ccds environment compiles its bytecode then.
    for render in renders.values():
        render()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in renders}
    for _ in range(runs):
        for name, render in renders.items():
            samples[name].append(with_cpu(render))
    load_after = os.getloadavg()[0]

    def median(name: str, index: int) -> float:
        return statistics.median(sample[index] for sample in samples[name])

    results: dict[str, Any] = {}
    for name in renders:
        results[f"{name} (wall)"] = stats([wall for wall, _ in samples[name]])
        results[f"{name} (CPU)"] = stats([cpu for _, cpu in samples[name]])
    for name in renders:
        if name != ccds_name:
            results[f"ratio of wall medians ({name} / ccds, target <= 1.0)"] = median(
                name, 0
            ) / median(ccds_name, 0)
            results[f"ratio of CPU medians ({name} / ccds)"] = median(name, 1) / median(
                ccds_name, 1
            )
    results["1-minute load average before / after (machine shared with other jobs)"] = (
        f"{load_before:.2f} / {load_after:.2f} on {os.cpu_count()} CPUs"
    )
    return results


def ccds_version(ccds: Path) -> str:
    script = "import importlib.metadata as m; print(m.version('cookiecutter-data-science'))"
    return subprocess.run(
        [str(ccds.with_name("python")), "-c", script],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def first_green(work: Path) -> dict[str, float]:
    project_root = work / "green"
    render = render_ours(project_root)
    project = next(project_root.iterdir())
    install = run(["uv", "sync", "--locked"], cwd=project)
    setup = run(["make", "setup"], cwd=project)
    tests = run(["make", "test-fast"], cwd=project)
    repro = run(["make", "repro"], cwd=project)
    return {
        "render": render,
        "install_from_lock": install,
        "setup_rest": setup,
        "tests_fast": tests,
        "dvc_repro": repro,
        "total": render + install + setup + tests + repro,
    }


def pip_resolution(project: Path, timeout: float) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        try:
            return run(
                [
                    str(venv / "bin" / "pip"),
                    "install",
                    "--quiet",
                    "--dry-run",
                    "--ignore-installed",
                    "-e",
                    str(project),
                ],
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None


def repro_times(project: Path, runs: int) -> dict[str, Any]:
    def cold() -> float:
        run(["uv", "run", "--locked", "dvc", "repro", "--force"], cwd=project)
        return run(["uv", "run", "--locked", "dvc", "repro", "--force"], cwd=project)

    def warm() -> float:
        return run(["uv", "run", "--locked", "dvc", "repro"], cwd=project)

    return {"cold_forced": repeat(runs, cold), "warm_noop": repeat(runs, warm)}


def pipeline_local_beside_repro(project: Path, runs: int) -> dict[str, Any]:
    """`make pipeline-local` (the SageMaker definition executed on loopback AWS) beside a cold
    `dvc repro --force` of the same project, interleaved so both see the same machine load."""
    pipeline_local: list[float] = []
    repro: list[float] = []
    run(["uv", "run", "--locked", "dvc", "repro", "--force"], cwd=project)  # imports cached once
    for _ in range(runs):
        pipeline_local.append(run(["make", "pipeline-local"], cwd=project))
        repro.append(run(["uv", "run", "--locked", "dvc", "repro", "--force"], cwd=project))
    return {
        "make pipeline-local": stats(pipeline_local),
        "dvc repro --force (cold)": stats(repro),
        "ratio of medians": statistics.median(pipeline_local) / statistics.median(repro),
    }


def repro_scaling(project: Path) -> dict[str, float]:
    """dvc repro time with the sample grown 1x, 10x and 100x (resampled rows, small noise)."""
    import numpy as np
    import pandas as pd

    raw = project / "data" / "raw" / "dataset.csv"
    original = raw.read_bytes()
    frame = pd.read_csv(raw)
    target = frame.columns[-1]
    results: dict[str, float] = {}
    rng = np.random.default_rng(0)
    try:
        for factor in (1, 10, 100):
            grown = frame.sample(len(frame) * factor, replace=True, random_state=factor)
            features = grown.columns.drop(target)
            noise = rng.normal(0, 0.01, size=(len(grown), len(features)))
            grown[features] = grown[features].astype(float) * (1 + noise)
            grown.to_csv(raw, index=False)
            results[f"{factor}x ({len(grown)} rows)"] = run(
                ["uv", "run", "--locked", "dvc", "repro"], cwd=project
            )
    finally:
        raw.write_bytes(original)
    return results


PACKAGE_SOURCE = "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}"


def start_server(
    project: Path, package: str, pythonpath: Path | None = None, extra: tuple[str, ...] = ()
) -> tuple[Any, int]:
    """The project's `serve` module in its own process; ``pythonpath`` puts another copy first,
    ``extra`` adds `serve` options."""
    port = free_port()
    env = ENV | ({"PYTHONPATH": str(pythonpath)} if pythonpath else {})
    command = [str(project / ".venv" / "bin" / "python"), "-m", f"{package}.serve"]
    server = subprocess.Popen(
        [*command, "--model-dir", str(project / "models"), "--port", str(port), *extra],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_for_port(port, timeout=30):
        server.kill()
        raise RuntimeError("the model server did not start")
    return server, port


def baseline_package(ref: str, package: str, folder: Path) -> Path:
    """The rendered package's source as it was at git ``ref`` (its modules carry no Jinja)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, PACKAGE_SOURCE],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    shutil.move(str(folder / PACKAGE_SOURCE), str(folder / package))
    return folder


def load(port: int, body: Path, concurrency: int, requests: int) -> dict[str, float]:
    command = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port", str(port)]
    command += ["--body", str(body), "--concurrency", str(concurrency)]
    output = subprocess.run(
        [*command, "--requests", str(requests)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(output.stdout))


def serving(project: Path, baseline: str | None = None, rounds: int = 3) -> dict[str, Any]:
    """Load on the local server: 1 and 100 rows, 1 and 8 clients.

    With ``baseline`` (a git ref of this repository), the package as it was there is served too,
    from the same environment and model, and the two are loaded in turn, ``rounds`` times per
    figure, so both see the same machine (this one is shared; timings are noisy). Each figure is
    the median over rounds.
    """
    import pandas as pd

    package = next((project / "src").glob("*/schema.json")).parent.name
    test = pd.read_csv(project / "data" / "processed" / "test" / "test.csv")
    features = test.drop(columns=test.columns[-1])
    results: dict[str, Any] = {}
    servers: dict[str, tuple[Any, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if baseline:
                old = baseline_package(baseline, package, Path(tmp) / "baseline")
                servers[f"baseline {baseline}"] = start_server(project, package, old)
            servers["current"] = start_server(project, package)
            for rows in (1, 100):
                body = Path(tmp) / f"{rows}.csv"
                sample = features.sample(rows, replace=True, random_state=rows)
                body.write_text(sample.to_csv(index=False, header=False))
                for concurrency in (1, 8):
                    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                    order = list(servers.items())
                    for _ in range(rounds):
                        for name, (_, port) in order:
                            runs[name].append(load(port, body, concurrency, 400))
                        order.reverse()  # neither server always goes first (an A/A run showed bias)
                    figure = f"{rows} row(s), concurrency {concurrency}"
                    for name, samples in runs.items():
                        key = f"{figure} / {name}" if baseline else figure
                        results[key] = {
                            field: statistics.median(sample[field] for sample in samples)
                            for field in samples[0]
                        }
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=10)
    return results


def captured_lines(folder: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in folder.rglob("*.jsonl"))


def shadow_serving(project: Path, rounds: int = 3, requests: int = 400) -> dict[str, Any]:
    """The champion alone beside the champion with a shadow challenger: 1 row, 1 and 8 clients.

    Both servers capture (as `make serve` does); the challenger is a copy of the champion's model,
    so the shadow costs what a retrained model of the same kind costs. The two are loaded in turn,
    ``rounds`` times per figure, and each figure is the median over rounds. Shadow copies the
    challenger did not score (dropped when its queue was full) are counted from the captures.
    """
    import pandas as pd

    package = next((project / "src").glob("*/schema.json")).parent.name
    test = pd.read_csv(project / "data" / "processed" / "test" / "test.csv")
    features = test.drop(columns=test.columns[-1])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        challenger = work / "challenger"
        shutil.copytree(project / "models", challenger)
        body = work / "1.csv"
        body.write_text(features.sample(1, random_state=1).to_csv(index=False, header=False))
        shadow_capture = work / "capture-shadow"
        options = {
            "champion alone": ("--capture-dir", str(work / "capture-alone")),
            "champion + shadow": (
                *("--capture-dir", str(shadow_capture), "--challenger-dir", str(challenger)),
                *("--mode", "shadow"),
            ),
        }
        servers: dict[str, tuple[Any, int]] = {}
        try:
            for name, extra in options.items():
                servers[name] = start_server(project, package, extra=extra)
            for concurrency in (1, 8):
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                order = list(servers.items())
                for _ in range(rounds):
                    for name, (_, port) in order:
                        runs[name].append(load(port, body, concurrency, requests))
                    order.reverse()
                for name, samples in runs.items():
                    results[f"1 row, concurrency {concurrency} / {name}"] = {
                        field: statistics.median(sample[field] for sample in samples)
                        for field in samples[0]
                    }
            # Let the challenger finish the copies still queued, then count what it never scored.
            previous, deadline = -1, time.monotonic() + 30
            while time.monotonic() < deadline:
                scored = captured_lines(shadow_capture / "challenger")
                if scored == previous:
                    break
                previous = scored
                time.sleep(1)
            answered = captured_lines(shadow_capture / "champion")
            results["shadow copies dropped (challenger queue full)"] = (
                f"{answered - previous} of {answered}"
            )
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=10)
    results["1-minute load average after (machine shared with other jobs)"] = (
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    return results


def render_scaling(work: Path) -> dict[str, float]:
    combos = [
        [],
        ["problem_type=regression", "ci_system=github-actions"],
        ["source_control=codecommit", "license=MIT"],
        ["problem_type=regression", "python_version=3.12", "license=Proprietary"],
    ]
    results = {}
    for count in (1, 2, 4):
        start = time.perf_counter()
        for index, answers in enumerate(combos[:count]):
            render_ours(work / f"scale-{count}-{index}", *answers)
        results[f"{count} combination(s)"] = time.perf_counter() - start
    return results


def matrix_test_scaling() -> dict[str, float]:
    """Serial time of the per-combination tests (bake checks, cfn-lint, checkov): 1, 2, 4 rows."""
    files = ["tests/test_bake.py", "tests/test_infrastructure.py"]
    command = [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *files]
    return {
        f"{rows} combination(s)": run(
            command, cwd=ROOT, env=ENV | {"TEMPLATE_MATRIX_ROWS": str(rows)}
        )
        for rows in (1, 2, 4)
    }


# What `uv sync` installs for each dependency set of a rendered project: the model's runtime
# (what every SageMaker job and the endpoint install, src/requirements.txt), each tooling group
# alone, and everything (what `make setup` installs on a laptop).
DEPENDENCY_SETS = {
    "runtime": ["--no-default-groups"],
    "cloud": ["--only-group", "cloud"],
    "plots": ["--only-group", "plots"],
    "dev": ["--only-group", "dev"],
    "all (make setup)": [],
}
FRAMEWORKS = ("scikit-learn", "xgboost", "lightgbm")
FRAMEWORK_ROW = "7 model_framework: dvc repro --force, interleaved (s)"
GROUPS_ROW = "8 dependency sets: fresh venv from the lock"


def tree_megabytes(path: Path) -> float:
    """Bytes of the files under ``path`` (hard links to uv's cache counted once), in MB."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for file in path.rglob("*"):
        info = file.lstat()
        if file.is_symlink() or not file.is_file() or (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        total += info.st_size
    return total / 1e6


def install_set(project: Path, options: list[str], cache: Path | None) -> dict[str, float]:
    """Install one dependency set into a new venv from the project's lock; its time and size."""
    with tempfile.TemporaryDirectory(prefix="venv-", dir=project.parent) as tmp:
        venv = Path(tmp) / "venv"
        env = ENV | {"UV_PROJECT_ENVIRONMENT": str(venv)}
        if cache is not None:
            env["UV_CACHE_DIR"] = str(cache)
        seconds = run(
            ["uv", "sync", "--locked", "--no-install-project", "--quiet", *options],
            cwd=project,
            env=env,
        )
        packages = len(list((venv / "lib").glob("python*/site-packages/*.dist-info")))
        return {"seconds": seconds, "megabytes": tree_megabytes(venv), "packages": packages}


def dependency_sets(project: Path, cold: tuple[str, ...]) -> dict[str, Any]:
    """Size and install time of each dependency set, warm uv cache (the project's own `make
    setup` filled it); the sets named in ``cold`` also with an empty cache (every wheel
    downloaded from the registry)."""
    results: dict[str, Any] = {}
    for name, options in DEPENDENCY_SETS.items():
        warm = install_set(project, options, None)
        row = {
            "size (MB)": round(warm["megabytes"], 1),
            "packages": int(warm["packages"]),
            "install, warm cache (s)": warm["seconds"],
        }
        if name in cold:
            with tempfile.TemporaryDirectory(prefix="uv-cache-", dir=project.parent) as cache:
                row["install, cold cache (s)"] = install_set(project, options, Path(cache))[
                    "seconds"
                ]
        results[name] = row
    return results


def framework_repro(work: Path, runs: int) -> dict[str, Any]:
    """`dvc repro --force` of a default project per model framework, interleaved so all see the
    same machine load; each project installed from its own lock first."""
    projects = {}
    for framework in FRAMEWORKS:
        output = work / f"framework-{framework}"
        render_ours(output, f"model_framework={framework}")
        projects[framework] = next(output.iterdir())
        run(["make", "setup"], cwd=projects[framework])
        run(["uv", "run", "--locked", "dvc", "repro", "--force"], cwd=projects[framework])
    samples: dict[str, list[float]] = {framework: [] for framework in FRAMEWORKS}
    for _ in range(runs):
        for framework, project in projects.items():
            command = ["uv", "run", "--locked", "dvc", "repro", "--force"]
            samples[framework].append(run(command, cwd=project))
    results: dict[str, Any] = {framework: stats(samples[framework]) for framework in FRAMEWORKS}
    baseline, *others = FRAMEWORKS
    for framework in others:
        results[f"ratio of medians ({framework} / {baseline})"] = statistics.median(
            samples[framework]
        ) / statistics.median(samples[baseline])
    return results


def frameworks_and_groups(work: Path, runs: int, cold: tuple[str, ...]) -> dict[str, Any]:
    repro = framework_repro(work, runs)
    return {
        FRAMEWORK_ROW: repro,
        GROUPS_ROW: {
            framework: dependency_sets(next((work / f"framework-{framework}").iterdir()), cold)
            for framework in FRAMEWORKS
        },
    }


TRACKING_ROW = "9 experiment tracking: what MLflow adds to dvc repro --force and to the environment"
# The dependency sets that tell what tracking adds (the tracking group: mlflow-skinny,
# sagemaker-mlflow, matplotlib): to make setup's environment, and to what a job installs.
TRACKING_SETS = {
    "all (make setup)": [],
    "all but the tracking group": ["--no-group", "tracking"],
    "runtime (a job)": ["--no-default-groups"],
    "runtime + tracking (a job logging to MLflow)": ["--no-default-groups", "--group", "tracking"],
}


def tracking_cost(work: Path, runs: int) -> dict[str, Any]:
    """`dvc repro --force` with tracking (as rendered) and without (the same project with the
    evaluate stage's --track-locally removed, so nothing is recorded), interleaved; and the
    environment's size with and without the tracking group."""
    render_ours(work / "tracking")
    tracked = next((work / "tracking").iterdir())
    run(["make", "setup"], cwd=tracked)
    untracked = work / "no-tracking" / tracked.name
    shutil.copytree(tracked, untracked, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    dvc_yaml = untracked / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace(" --track-locally", ""))
    run(["make", "setup"], cwd=untracked)
    command = ["uv", "run", "--locked", "dvc", "repro", "--force"]
    for project in (tracked, untracked):
        run(command, cwd=project)  # imports compiled and cached once, the store created
    samples: dict[str, list[float]] = {"with tracking": [], "without tracking": []}
    for _ in range(runs):
        samples["with tracking"].append(run(command, cwd=tracked))
        samples["without tracking"].append(run(command, cwd=untracked))
    if (untracked / "mlflow.db").exists():
        raise SystemExit("bench: the copy without tracking recorded a run")
    results: dict[str, Any] = {name: stats(values) for name, values in samples.items()}
    results["added by tracking (difference of medians, s)"] = statistics.median(
        samples["with tracking"]
    ) - statistics.median(samples["without tracking"])
    sizes = {name: install_set(tracked, options, None) for name, options in TRACKING_SETS.items()}
    results["environment size (MB)"] = {
        name: round(size["megabytes"], 1) for name, size in sizes.items()
    }
    return results


def suite_time(target: str) -> float | str:
    """Wall time of the README's test command (or its quick subset), exactly as users run it."""
    start = time.perf_counter()
    try:
        return run(["make", "--no-print-directory", target], cwd=ROOT)
    except subprocess.CalledProcessError:
        return f"FAILED after {time.perf_counter() - start:.0f} s"


def table(results: dict[str, Any]) -> str:
    lines = ["| figure | value |", "| --- | --- |"]

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and "median" in value:
            lines.append(
                f"| {prefix} | {value['median']:.2f} s (min {value['min']:.2f}, "
                f"max {value['max']:.2f}, {value['runs']} runs) |"
            )
        elif isinstance(value, dict) and "p99_ms" in value:
            lines.append(
                f"| {prefix} | {value['rps']:.0f} req/s, p50 {value['p50_ms']:.1f} ms, "
                f"p99 {value['p99_ms']:.1f} ms, errors {value['errors']} |"
            )
        elif isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix} / {key}" if prefix else key, inner)
        elif isinstance(value, float):
            lines.append(f"| {prefix} | {value:.2f} |")
        else:
            lines.append(f"| {prefix} | {value} |")

    add("", results)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full-suite", action="store_true", help="also time the full test suite")
    parser.add_argument(
        "--compare-pip",
        action="store_true",
        help="also time plain pip's resolution of the rendered project (slow)",
    )
    parser.add_argument("--pip-timeout", type=float, default=300)
    parser.add_argument(
        "--ccds-template",
        type=Path,
        default=default_ccds_template(),
        help="local copy of the cookiecutter-data-science template to render beside ours",
    )
    parser.add_argument(
        "--render-runs", type=int, default=11, help="renders of each template, interleaved"
    )
    parser.add_argument(
        "--render-only", action="store_true", help="only the render comparison (row 1)"
    )
    parser.add_argument(
        "--render-variant",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="also render this folder of the template (e.g. another commit) in the same rounds",
    )
    parser.add_argument(
        "--serving-only", action="store_true", help="only the serving figures (row 4)"
    )
    parser.add_argument(
        "--shadow-only",
        action="store_true",
        help="only the champion alone vs with a shadow challenger (row 4b)",
    )
    parser.add_argument(
        "--serving-baseline",
        metavar="GIT_REF",
        help="also serve the rendered package as it was at this commit, in turn with today's",
    )
    parser.add_argument(
        "--serving-rounds", type=int, default=3, help="serving runs per figure, median reported"
    )
    parser.add_argument(
        "--pipeline-local-only",
        action="store_true",
        help="only `make pipeline-local` beside `dvc repro --force` (row 3b), in a fresh render",
    )
    parser.add_argument(
        "--frameworks-only",
        action="store_true",
        help="only rows 7-8: dvc repro per model framework, size and install time per group",
    )
    parser.add_argument(
        "--tracking-only",
        action="store_true",
        help="only row 9: dvc repro --force with and without MLflow tracking, environment sizes",
    )
    parser.add_argument(
        "--cold-groups",
        default="runtime,plots",
        help="dependency sets also installed with an empty uv cache (downloads; 'none' for none)",
    )
    args = parser.parse_args()
    cold = tuple(name for name in args.cold_groups.split(",") if name in DEPENDENCY_SETS)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "memory_gib": round(
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
            ),
        }
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        if args.serving_only:
            project_root = work / "serving"
            render_ours(project_root)
            project = next(project_root.iterdir())
            run(["make", "setup", "repro"], cwd=project)
            results["4 serving"] = serving(project, args.serving_baseline, args.serving_rounds)
            report(results, "serving.json")
            return
        if args.shadow_only:
            project_root = work / "shadow"
            render_ours(project_root)
            project = next(project_root.iterdir())
            run(["make", "setup", "repro"], cwd=project)
            results[SHADOW_ROW] = shadow_serving(project, args.serving_rounds)
            report(results, "shadow.json")
            return
        if args.pipeline_local_only:
            render_ours(work / "pipeline-local")
            project = next((work / "pipeline-local").iterdir())
            run(["make", "setup"], cwd=project)
            results[PIPELINE_LOCAL_ROW] = pipeline_local_beside_repro(project, args.runs)
            report(results, "pipeline-local.json")
            return
        if args.tracking_only:
            results[TRACKING_ROW] = tracking_cost(work, min(args.runs, 3))
            report(results, "tracking.json")
            return
        if args.frameworks_only:
            results |= frameworks_and_groups(work, min(args.runs, 3), cold)
            report(results, "frameworks.json")
            return
        variants = dict(item.split("=", 1) for item in args.render_variant)
        results["1 render (s), interleaved with ccds"] = render_side_by_side(
            work,
            args.render_runs,
            args.ccds_template.resolve(),
            {name: Path(folder).resolve() for name, folder in variants.items()},
        )
        if args.render_only:
            report(results, "render.json")
            return
        green = first_green(work)
        results["2 first green (warm cache, seconds; target total < 60)"] = green
        project = next((work / "green").iterdir())
        if args.compare_pip:
            pip = pip_resolution(project, timeout=args.pip_timeout)
            results["2b plain pip resolution, same dependencies (s)"] = (
                pip if pip is not None else f"> {args.pip_timeout:.0f} (stopped)"
            )
        results["3 dvc repro (target warm no-op < 2 s)"] = repro_times(project, args.runs)
        results[PIPELINE_LOCAL_ROW] = pipeline_local_beside_repro(project, min(args.runs, 3))
        results["4 serving (target p99 < 20 ms for 1 row at concurrency 1)"] = serving(
            project, args.serving_baseline, args.serving_rounds
        )
        results[SHADOW_ROW] = shadow_serving(project, args.serving_rounds)
        results["5 template test suite (s; target fast < 60)"] = {
            "fast subset (make test-fast)": suite_time("test-fast"),
            **({"full (make test)": suite_time("test")} if args.full_suite else {}),
        }
        results["6 scaling"] = {
            "render time (s)": render_scaling(work),
            "matrix test time, serial (s)": matrix_test_scaling(),
            "dvc repro time by data size (s)": repro_scaling(project),
        }
        results |= frameworks_and_groups(work, min(args.runs, 3), cold)
        results[TRACKING_ROW] = tracking_cost(work, min(args.runs, 3))
    report(results, "latest.json")


def report(results: dict[str, Any], file_name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / file_name).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {RESULTS / file_name}")


if __name__ == "__main__":
    main()
