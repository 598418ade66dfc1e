"""Batch prediction from a CSV file with the endpoint's own handler functions.

python -m <package>.predict --model-dir models --input data/processed/test/test.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .inference import InvalidInputError, input_fn, model_fn, output_fn, predict_fn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--input", type=Path, required=True, help="CSV with a header row")
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    parser.add_argument("--accept", default="text/csv", choices=["text/csv", "application/json"])
    args = parser.parse_args(argv)
    model = model_fn(str(args.model_dir))
    text = args.input.read_text(encoding="utf-8")
    # Drop columns the model does not take (the target, ids) so a labelled file can be scored.
    header, *rows = text.splitlines()
    names = header.split(",")
    keep = [i for i, name in enumerate(names) if name in model.features]
    body = "\n".join(",".join(line.split(",")[i] for i in keep) for line in [header, *rows])
    try:
        result, _ = output_fn(predict_fn(input_fn(body, "text/csv"), model), args.accept)
    except InvalidInputError as error:
        print(f"error: {args.input}: {error}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(result)
    else:
        sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
