"""Jinja extensions cookiecutter loads for this template (``_extensions`` in cookiecutter.json):
:class:`OrganisationStandards` hands the templates the organisation standards; the other two
render faster without changing a byte of the output.

Cookiecutter renders every path of the template, and every answer, as a Jinja template of its
own (``Environment.from_string``): about 150 strings per render, nearly all without a single
Jinja marker, each lexed, parsed, turned into Python source and compiled: about a third of the
CPU cookiecutter spends generating this template's files. A string without any of Jinja's
markers renders to itself, so :class:`LiteralStrings` hands such a string back as it is and
compiles only the others. tests/test_template_files.py checks that a render is byte-identical
with and without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import Environment
from jinja2.bccache import Bucket, FileSystemBytecodeCache
from jinja2.ext import Extension


class OrganisationStandards(Extension):
    """The organisation standards (hooks/org_standards.py: the file, its schema) as the Jinja
    global ``org_standards``, for what a template writes from them: the subscribers of the
    notification topic and the budget (templates/notifications.j2).

    Cookiecutter builds its environment before the pre-generation hook runs, and that hook refuses
    a file the schema rejects with one line naming the field, before any file is written; so a
    file that does not load is handed over as no standards here, never raised.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        hooks = str(Path(__file__).resolve().parent / "hooks")
        if hooks not in sys.path:
            sys.path.append(hooks)
        import org_standards

        try:
            standards = org_standards.load(org_standards.locate(Path(__file__).resolve().parent))
        except org_standards.StandardsError:
            standards = {}
        environment.globals["org_standards"] = standards


class TemplateFolder(Extension):
    """The template's folder as the Jinja global ``template_folder()``, for the hooks.

    Cookiecutter runs a hook as a rendered copy written to a temp folder, away from the tested
    helpers in the template's ``hooks/``. It renders that copy in the template's folder: hooks are
    found there (``cookiecutter.hooks.find_hook`` must be called with the template as the working
    directory, and ``run_hook_from_repo_dir`` makes it so, also when cruft renders a clone of a
    template commit). So the working directory at render time is the folder the hook came from.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["template_folder"] = template_folder


def template_folder() -> str:
    """The folder cookiecutter renders the hooks in: the template's (:class:`TemplateFolder`)."""
    return str(Path.cwd())


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


class _SettingsBytecodeCache(FileSystemBytecodeCache):
    """Jinja's file cache, in a subfolder per compile settings (:func:`compile_settings`, known
    once the environment has loaded its extensions), where a cache that cannot be read or
    written is just a miss."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.base = base
        self.ready = False

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        if not self.ready:
            folder = Path(self.base, f"cookiecutter-{compile_settings(environment)}")
            with contextlib.suppress(OSError):
                folder.mkdir(mode=0o700, exist_ok=True)
            self.directory = str(folder)
            self.ready = True
        return super().get_bucket(environment, name, filename, source)

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def compile_settings(environment: Environment) -> str:
    """What Jinja's compiled code depends on besides the source (its cache keys hold only the
    template's name, file and source): syntax, whitespace handling, extensions, code options."""
    settings = {
        "jinja": jinja2.__version__,
        "syntax": [
            environment.block_start_string,
            environment.block_end_string,
            environment.variable_start_string,
            environment.variable_end_string,
            environment.comment_start_string,
            environment.comment_end_string,
            environment.line_statement_prefix,
            environment.line_comment_prefix,
        ],
        "whitespace": [
            environment.trim_blocks,
            environment.lstrip_blocks,
            environment.newline_sequence,
            environment.keep_trailing_newline,
        ],
        "extensions": sorted(environment.extensions),
        "code": [
            environment.optimized,
            environment.is_async,
            repr(environment.autoescape),
            environment.finalize is not None,
        ],
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class CompiledTemplateCache(Extension):
    """Keep the compiled code of the template's files and strings between renders.

    Compiling what cookiecutter renders through Jinja (the CloudFormation templates with their
    macros, the README, pyproject.toml, the hooks, paths under ``{{cookiecutter.package_name}}``)
    is most of the CPU a render spends generating files; the code is the same until the source
    changes. Jinja's bytecode cache keeps it in the user's private temporary folder (created
    0700 and refused if another user owns it, since loading cached code runs it), under a
    subfolder for these compile settings, and recompiles a source that changed (each entry
    records its source's checksum). Jinja caches only files; strings (``from_string``) are
    cached here the same way, keyed by the string. The first render on a machine compiles
    everything, as before. A folder that cannot be written only means no cache.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        try:
            base = FileSystemBytecodeCache().directory  # Jinja's checked per-user folder
        except (OSError, RuntimeError):
            return
        cache = _SettingsBytecodeCache(base)
        environment.bytecode_cache = cache
        compile_string = environment.from_string

        def from_string(
            source: Any,
            globals: MutableMapping[str, Any] | None = None,
            template_class: type[Any] | None = None,
        ) -> Any:
            if not isinstance(source, str) or template_class is not None:
                return compile_string(source, globals, template_class)
            # What Jinja's loaders do for a file (BaseLoader.load), with the string as its name.
            bucket = cache.get_bucket(environment, source, None, source)
            if bucket.code is None:
                bucket.code = environment.compile(source)
                cache.set_bucket(bucket)
            return environment.template_class.from_code(
                environment, bucket.code, environment.make_globals(globals), None
            )

        environment.from_string = from_string  # type: ignore[method-assign]
