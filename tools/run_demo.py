"""`make demo`: render the default project and run it end to end, printing one summary per step.

    uv run --no-project python tools/run_demo.py [--uv uv] [--output-dir build/demo]

Every step's whole output (the installs' package lists, the predictions, the monitor report) goes
to ``<output-dir>/demo.log``; the terminal gets a line per step, the quality-gate verdict, the first
lines of the predictions and the monitor's verdict. A failing step prints the end of its output
and stops. The script needs only the standard library: it installs the template's own tools as its
first step, into the log (``uv run --locked`` would print the whole package list on a fresh clone).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
PREDICTIONS_SHOWN = 4
FAILURE_TAIL = 25


def project_env() -> dict[str, str]:
    """The rendered project manages its own environment: drop the template's."""
    dropped = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    return {k: v for k, v in os.environ.items() if k not in dropped}


class Demo:
    def __init__(self, output_dir: Path) -> None:
        self.log_path = output_dir / "demo.log"
        self.log = self.log_path.open("w", encoding="utf-8")

    def run(self, title: str, command: list[str], cwd: Path) -> list[str]:
        """Run one step, log all of it; return its stdout lines (stderr goes to the log only)."""
        started = time.monotonic()
        self.log.write(f"\n=== {title}: {' '.join(command)}\n")
        self.log.flush()
        result = subprocess.run(  # noqa: S603 - fixed commands of this demo
            command, cwd=cwd, env=project_env(), capture_output=True, text=True, check=False
        )
        self.log.write(result.stdout + result.stderr)
        self.log.flush()
        seconds = time.monotonic() - started
        if result.returncode != 0:
            print(f"FAILED {title} ({seconds:.1f} s), end of its output:")
            for line in (result.stdout + result.stderr).splitlines()[-FAILURE_TAIL:]:
                print(f"  {line}")
            print(f"whole output: {self.log_path}")
            raise SystemExit(1)
        print(f"ok  {title} ({seconds:.1f} s)")
        return result.stdout.splitlines() + result.stderr.splitlines()


def print_install_count(output: list[str]) -> None:
    """uv's "Installed N packages" line of an install, when it installed anything."""
    counts = [line.strip() for line in output if line.strip().startswith("Installed ")]
    if counts:
        print(f"    {counts[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output-dir", type=Path, default=Path("build/demo"))
    parser.add_argument("--uv", default=os.environ.get("UV", "uv"), help="the uv to install with")
    args = parser.parse_args(argv)
    out = args.output_dir.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    demo = Demo(out)
    tools = demo.run("install the template's tools", [args.uv, "sync", "--locked"], TEMPLATE)
    print_install_count(tools)
    run = [args.uv, "run", "--locked", "python"]
    cookiecutter = [*run, "-m", "cookiecutter", "--no-input", str(TEMPLATE)]
    demo.run("render the default project", [*cookiecutter, "--output-dir", str(out)], TEMPLATE)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    make = ["make", "--no-print-directory"]

    installed = demo.run("make setup: uv and the locked environment", [*make, "setup"], project)
    print_install_count(installed)
    trained = demo.run("make repro: prepare, train, evaluate, register", [*make, "repro"], project)
    for line in trained:
        if line.startswith("quality gate"):
            print(f"    {line}")
    predicted = demo.run("make predict: score the test split", [*make, "-s", "predict"], project)
    rows = [line for line in predicted if line.strip()]
    for line in rows[:PREDICTIONS_SHOWN]:
        print(f"    {line}")
    if len(rows) > PREDICTIONS_SHOWN:
        print(f"    ... {len(rows)} lines in all (see the log)")
    monitored = demo.run(
        "make monitor: drift against the training baseline",
        [*make, "-s", "monitor", "DATA=data/processed/test"],
        project,
    )
    for line in monitored:
        if line.startswith("monitor"):
            print(f"    {line}")
    print(f"project: {project}")
    print(f"whole output: {demo.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
