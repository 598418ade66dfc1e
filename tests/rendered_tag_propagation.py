"""The rendered project's model of where CloudFormation's stack-level tags reach
(``{{cookiecutter.project_slug}}/tests/tag_propagation.py``: plain Python, the same in every
render), imported here so the template's tests use the one definition."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .conftest import TEMPLATE

SOURCE = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests" / "tag_propagation.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rendered_tag_propagation_model", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tag_propagation = _load()
