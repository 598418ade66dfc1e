"""What ``train --bundle-inference-code`` puts in the model's ``code/`` folder.

The SageMaker scikit-learn image installs that folder before it serves (endpoint or batch
transform): sagemaker-containers runs ``python -m pip install . -r requirements.txt`` in it.

- ``inference.py``: the handler the image serves (``SAGEMAKER_PROGRAM``).
- ``requirements.txt``: the job code's locked runtime (``src/requirements.txt``) without its
  hashes: pip refuses hashes in an install that also names a folder ("Can't verify hashes for
  these file:// requirements because they point to directories"), and the image always installs
  ``.``. The pins stay exact, so pip can take no other version.
- ``platform-wheels/``: the platform library's wheel, which ``requirements.txt`` names (its
  ``--find-links platform-wheels``, read relative to the file): no index serves it.
- ``wheels/``, when the job code carries it (the standards require network isolation): the
  wheels the job itself installed from, whose bytes the code bundle checked against ``uv.lock``'s
  hashes before upload (``pipelines/code_bundle.py``). ``requirements.txt`` then starts with
  ``--no-index`` and ``--find-links wheels``: the image installs from that folder alone, so the
  model starts with no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops_platform import WHEELS_FOLDER

# The job code's root (src/ here, the code channel in a job): requirements.txt and wheels/.
JOB_CODE = Path(__file__).resolve().parent.parent
WHEELS = "wheels"
OFFLINE = f"--no-index\n--find-links {WHEELS}\n"


def without_hashes(requirements: str) -> str:
    """The requirements with each line's ``--hash=...`` options removed."""
    return "".join(
        line.split(" --hash=", 1)[0].rstrip() + "\n" for line in requirements.splitlines()
    )


def write(code: Path, job_code: Path = JOB_CODE) -> None:
    """Fill the model's ``code/`` folder from the job code in ``job_code``."""
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("inference.py"), code)
    requirements = job_code / "requirements.txt"
    if not requirements.exists():
        return
    pins = without_hashes(requirements.read_text())
    if (job_code / WHEELS_FOLDER).is_dir():
        shutil.copytree(job_code / WHEELS_FOLDER, code / WHEELS_FOLDER, dirs_exist_ok=True)
    wheels = job_code / WHEELS
    if wheels.is_dir():
        shutil.copytree(wheels, code / WHEELS, dirs_exist_ok=True)
        pins = OFFLINE + pins
    (code / "requirements.txt").write_text(pins)
