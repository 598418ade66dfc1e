"""The rendered project's model of where CloudFormation's stack-level tags reach
(``{{cookiecutter.project_slug}}/tests/tag_propagation.py``: plain Python, the same in every
render), imported here so the template's tests use the one definition."""

from __future__ import annotations

import sys
from types import ModuleType

from .conftest import TEMPLATE

SOURCE = TEMPLATE / "{{cookiecutter.project_slug}}" / "tests" / "tag_propagation.py"


def _load() -> ModuleType:
    """Executed from its source: importing it would leave a __pycache__ folder in the template,
    which every later render would copy into the project."""
    module = ModuleType("rendered_tag_propagation_model")
    module.__file__ = str(SOURCE)
    sys.modules[module.__name__] = module
    exec(compile(SOURCE.read_text(), str(SOURCE), "exec"), module.__dict__)  # noqa: S102
    return module


tag_propagation = _load()
