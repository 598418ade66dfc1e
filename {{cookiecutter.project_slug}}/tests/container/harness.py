"""Serve requests through the SageMaker scikit-learn container's own serving stack, in-process.

Runs in the test-only environment built from ``pipelines/image_versions.json`` (the image's Python
and pinned libraries, sagemaker-containers among them), never in the project's environment:

    python harness.py <base dir holding model/ and model/code/inference.py> [--install] < cases.json

Each case is ``{"method", "path", "headers", "body_b64"}``; prints one JSON list of
``{"status", "content_type", "allow", "body_b64"}``. The request goes through what the image's
``sagemaker_sklearn_container.serving.main`` builds: the user module imported from the model's
``code`` directory, wrapped by sagemaker-containers' ``Transformer`` and served by its Flask
``Worker`` (here through Flask's test client instead of gunicorn and nginx).

With ``--install`` the module is loaded as the image's ``sagemaker_containers._server.start``
loads it before gunicorn starts: ``_modules.import_module`` copies ``model/code`` to the code
directory and runs ``pip install . -r requirements.txt`` there; when pip fails it raises
``InstallModuleError`` and, as the serving process would, this exits with it.
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

# The image patches sagemaker_containers/_mapping.py for Python 3.12, replacing collections.Mapping
# with collections.abc.Mapping (docker/1.4-2-py312/final/Dockerfile.cpu); the same alias, in memory.
collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]


def user_module_transformer(module: Any) -> Any:
    """sagemaker_sklearn_container/serving.py ``_user_module_transformer`` (aws/sagemaker-scikit-
    learn-container@eae7b6b1), less its scikit-learn default functions, which a module with a
    ``transform_fn`` never reaches."""
    from sagemaker_containers.beta.framework import transformer

    model_fn = module.model_fn
    input_fn = getattr(module, "input_fn", None)
    predict_fn = getattr(module, "predict_fn", None)
    output_fn = getattr(module, "output_fn", None)
    transform_fn = getattr(module, "transform_fn", None)
    if transform_fn and (input_fn or predict_fn or output_fn):
        raise SystemExit(
            "UserError: Cannot use transform_fn implementation with input_fn, predict_fn, "
            "and/or output_fn"
        )
    if transform_fn is not None:
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    return transformer.Transformer(
        model_fn=model_fn, input_fn=input_fn, predict_fn=predict_fn, output_fn=output_fn
    )


def main() -> None:
    base = sys.argv[1]
    # sagemaker-containers reads /opt/ml from SAGEMAKER_BASE_DIR: model_dir is <base>/model.
    os.environ["SAGEMAKER_BASE_DIR"] = base
    code = Path(base) / "model" / "code"  # SAGEMAKER_SUBMIT_DIRECTORY
    from sagemaker_containers.beta.framework import worker

    if "--install" in sys.argv[2:]:
        from sagemaker_containers import _modules

        module = _modules.import_module(str(code), "inference")  # SAGEMAKER_PROGRAM
    else:
        sys.path.insert(0, str(code))
        module = importlib.import_module("inference")  # SAGEMAKER_PROGRAM=inference.py
    user_transformer = user_module_transformer(module)
    user_transformer.initialize()
    app = worker.Worker(transform_fn=user_transformer.transform, module_name="inference")
    client = app.test_client()
    results = []
    for case in json.load(sys.stdin):
        response = client.open(
            case["path"],
            method=case["method"],
            headers=case["headers"],
            data=base64.b64decode(case["body_b64"]),
        )
        results.append(
            {
                "status": response.status_code,
                "content_type": response.headers.get("Content-Type"),
                "allow": response.headers.get("Allow"),
                "body_b64": base64.b64encode(response.get_data()).decode("ascii"),
            }
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
