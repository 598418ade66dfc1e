"""Entry file for SageMaker Processing jobs, which can only run a file, not ``python -m``.

``python job_entry.py <package>.<module> [args...]`` runs ``python -m <package>.<module> [args...]``
with this folder (the uploaded ``src/``) on the path, so the job runs the project's own module.
"""

import runpy
import sys

if __name__ == "__main__":
    module = sys.argv.pop(1)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
