"""The sample dataset, rebuilt from the data scikit-learn ships; puts it into an empty DVC remote.

    python tools/sample_data.py      (``make setup`` runs it when data/raw/dataset.csv is absent)

A repository seeded by a SageMaker project holds only ``data/raw/dataset.csv.dvc``: the CSV is
git-ignored, and the project's new bucket (the DVC remote) starts empty, so the first build's
``dvc pull`` would fail. When the remote lacks the dataset, the sample is rebuilt here from
scikit-learn's bundled copy (nothing is downloaded), checked against the committed pointer's MD5,
and pushed; a pointer naming other data is refused with one line (push that data with
``make push``). When the remote has it, nothing is done. The template builds its committed sample
with the same functions (its ``tools/make_sample_data.py``), so the bytes are the same.

Exit status: 0 when the remote has the dataset (now or already), 1 when it could not be given it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parent.parent
POINTER = Path("data/raw/dataset.csv.dvc")
# The one pointer this tool may restore: the sample's own file under data/raw.
SAMPLE_FILE = "dataset.csv"


class SampleDataError(Exception):
    """The remote could not be given the dataset; the message is one line."""


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def sample_frame(problem_type: str) -> tuple[pd.DataFrame, str]:
    """The sample of a problem type (features and target) and its target column."""
    from sklearn.datasets import load_breast_cancer, load_diabetes  # bundled, read from disk

    if problem_type == "classification":
        cancer = load_breast_cancer(as_frame=True).frame
        return cancer.rename(columns=snake).rename(columns={"target": "benign"}), "benign"
    if problem_type == "regression":
        diabetes = load_diabetes(as_frame=True, scaled=False).frame
        renamed = {"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"}
        return diabetes.rename(columns=renamed | {"target": "disease_progression"}), (
            "disease_progression"
        )
    raise SampleDataError(f"no sample dataset for problem_type {problem_type!r}")


def sample_csv(problem_type: str) -> bytes:
    frame, _ = sample_frame(problem_type)
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - DVC's content address, not security


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - DVC of this environment, fixed arguments
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


def remote_has_data(project: Path) -> bool:
    """Whether the DVC remote holds what the pointer names (``dvc status --cloud``)."""
    status = _dvc(project, "status", "--cloud", "--json", str(POINTER))
    if status.returncode != 0:
        raise SampleDataError(f"dvc status --cloud failed: {_last_line(status)}")
    changes: dict[str, str] = json.loads(status.stdout or "{}")
    # Per file: "deleted" when only the remote has it (a fresh clone), "new" when only the local
    # cache has it, "missing" when neither has it; in sync, no entry.
    return not {"new", "missing"} & set(changes.values())


def problem_type_of(project: Path) -> str:
    schema = next((project / "src").glob("*/schema.json"))
    return str(json.loads(schema.read_text())["problem_type"])


def ensure_remote_has_sample(project: Path = PROJECT) -> str:
    """Push the rebuilt sample when the remote lacks it; return one line saying what was done."""
    pointer = yaml.safe_load((project / POINTER).read_text())
    (out,) = pointer["outs"]
    if remote_has_data(project):
        return f"the DVC remote has data/raw/{out['path']} ({out['md5']})"
    problem_type = problem_type_of(project)
    data = sample_csv(problem_type)
    if out["path"] != SAMPLE_FILE or md5(data) != out["md5"]:
        raise SampleDataError(
            f"the DVC remote lacks data/raw/{out['path']} (md5 {out['md5']}), which is not the "
            f"{problem_type} sample (md5 {md5(data)}): push it with `make push` from a machine "
            "that has it"
        )
    (project / "data" / "raw" / SAMPLE_FILE).write_bytes(data)
    for args in (("commit", "--force", "--quiet", str(POINTER)), ("push", str(POINTER))):
        result = _dvc(project, *args)
        if result.returncode != 0:
            raise SampleDataError(f"dvc {args[0]} failed: {_last_line(result)}")
    return f"the DVC remote lacked data/raw/{SAMPLE_FILE}: pushed the {problem_type} sample"


def main() -> int:
    try:
        print(ensure_remote_has_sample())
    except SampleDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
