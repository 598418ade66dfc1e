# The template's front door. `make demo` and `make test` are the two commands of the README.
.DEFAULT_GOAL := help
SHELL := /bin/bash
# A working uv: the one on PATH, pyenv's, or a private copy `make uv` installs. The rendered
# project's script is the one definition of how (its folder name is the template's, braces included).
UV_FINDER := sh '{{cookiecutter.project_slug}}/tools/uv.sh'
ifeq ($(origin UV),undefined)
UV := $(shell $(UV_FINDER))
endif
DEMO_DIR ?= build/demo
# Some images set PYTHONDONTWRITEBYTECODE; every process then recompiles scikit-learn and SciPy.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help uv env browser demo test test-fast lint docs lock platform-wheel bench aws-acceptance clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

uv: ## Find uv, or install a private copy when none works; print which one is used
	@$(UV) --version >/dev/null 2>&1 || $(UV_FINDER) install >/dev/null
	@echo "uv: $(UV) ($$($(UV) --version))"

env: uv ## Install the template's locked tool environment (.venv)
	$(UV) sync --locked

demo: uv ## Render a default project and run it end to end (summary here, all output in DEMO_DIR/demo.log)
	@# Standard library only, so no environment is synced (and listed) before it: it installs the
	@# template's tools itself, into the log.
	$(UV) run --no-project python tools/run_demo.py --uv '$(UV)' --output-dir '$(DEMO_DIR)'

browser: ## Install Debian's chromium for the browser test (as root with apt-get; else say how)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: no chromium; the browser test is skipped (Debian: apt-get install chromium)"; fi

test: env lint browser ## The whole test suite: lint, answer rules, the option matrix, infrastructure, rendered projects
	$(UV) run --locked pytest -n 2 --dist loadfile

test-fast: env ## The quick subset (no rendered-project installs, no checkov, no property tests)
	$(UV) run --locked pytest -m "not slow" -n 2 --dist loadfile

lint: env ## Ruff and mypy on the template's own code
	$(UV) run --locked ruff check hooks service_catalog bench tools tests local_extensions.py
	$(UV) run --locked ruff format --check hooks service_catalog bench tools tests local_extensions.py
	$(UV) run --locked mypy
	$(UV) run --locked ruff check mlops-platform
	$(UV) run --locked ruff format --check mlops-platform
	$(UV) run --locked mypy --config-file mlops-platform/pyproject.toml mlops-platform/src mlops-platform/tests

platform-wheel: env ## Rebuild the platform library's wheel the rendered project carries (then make lock)
	rm -rf build/platform-wheel
	$(UV) build --wheel mlops-platform --out-dir build/platform-wheel
	rm -f '{{cookiecutter.project_slug}}'/src/platform-wheels/*.whl
	cp build/platform-wheel/*.whl '{{cookiecutter.project_slug}}/src/platform-wheels/'

docs: env ## Build the user guide (docs/, mkdocs --strict, offline) into build/site; tests/test_docs.py builds it in make test
	$(UV) run --locked mkdocs build --strict

lock: env ## Refresh the rendered project's uv.lock after changing its dependencies
	$(UV) run --locked python tools/lock_rendered_project.py

bench: env ## Benchmarks: render, first green, dvc repro, serving, test-suite time
	$(UV) run --locked python bench/run.py

aws-acceptance: env ## The whole road in a sandbox AWS account (refuses, offline, without credentials)
	$(UV) run --locked python tools/aws_acceptance.py $(ACCEPTANCE_ARGS)

clean: ## Remove build output
	rm -rf build .pytest_cache .ruff_cache .mypy_cache
