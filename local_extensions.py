"""Jinja extensions cookiecutter loads for this template (``_extensions`` in cookiecutter.json).

Cookiecutter renders every path of the template, and every answer, as a Jinja template of its
own (``Environment.from_string``): about 150 strings per render, nearly all without a single
Jinja marker, each lexed, parsed, turned into Python source and compiled: about a third of the
CPU cookiecutter spends generating this template's files. A string without any of Jinja's
markers renders to itself, so :class:`LiteralStrings` hands such a string back as it is and
compiles only the others. tests/test_template_files.py checks that a render is byte-identical
with and without it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension


class LiteralTemplate:
    """What ``Environment.from_string`` returns for text without Jinja markers: the text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def render(self, *args: Any, **kwargs: Any) -> str:
        return self.text


def is_literal(environment: Environment, text: object) -> bool:
    """Text Jinja would render unchanged: no block, variable, comment or line marker, and no
    carriage return (Jinja's lexer turns line endings into ``newline_sequence``)."""
    if not isinstance(text, str) or "\r" in text:
        return False
    markers = [
        environment.block_start_string,
        environment.variable_start_string,
        environment.comment_start_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
    ]
    return not any(marker and marker in text for marker in markers)


class LiteralStrings(Extension):
    """Skip compiling templates made from literal strings (module docstring)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        compile_string = environment.from_string

        def from_string(
            source: Any,
            globals: MutableMapping[str, Any] | None = None,
            template_class: type[Any] | None = None,
        ) -> Any:
            if is_literal(environment, source) and template_class is None:
                return LiteralTemplate(source)
            return compile_string(source, globals, template_class)

        # An instance attribute: only this environment, which cookiecutter made for this render.
        environment.from_string = from_string  # type: ignore[method-assign]
