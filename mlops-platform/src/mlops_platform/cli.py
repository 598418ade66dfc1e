"""``mlops-platform``: the library's commands, one subcommand each.

mlops-platform ground-truth --labels labels.csv [--output-dir data/ground-truth]
mlops-platform version
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import __version__, capture


def _version(_: argparse.Namespace) -> int:
    print(__version__)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mlops-platform", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ground_truth = commands.add_parser(
        "ground-truth", help=capture.GROUND_TRUTH_HELP, description=capture.GROUND_TRUTH_HELP
    )
    capture.add_arguments(ground_truth)
    ground_truth.set_defaults(run=capture.run)
    version = commands.add_parser("version", help="print the library's version")
    version.set_defaults(run=_version)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
