#!/bin/sh
# Find a working uv, or install a private one; print its path.
#
#   sh tools/uv.sh          print the path of a working uv (or of the private copy to install)
#   sh tools/uv.sh install  the same, installing the private copy first when none works
#
# Order: `uv` on PATH, the official installer's places (~/.local/bin, ~/.cargo/bin), any pyenv
# version that has uv (with pyenv, the `uv` shim fails in a folder whose .python-version names a
# version without uv: "pyenv: uv: command not found"), then a private virtual environment. A
# virtual environment is the one place pip may install into on an externally managed Python
# (PEP 668: Debian/Ubuntu system Python, Homebrew), where `python3 -m pip install uv` is refused.
set -u
PRIVATE="${UV_BOOTSTRAP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv-bootstrap}"

works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_uv() {
    for candidate in "$(command -v uv 2>/dev/null)" "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv"; do
        if works "$candidate"; then echo "$candidate"; return 0; fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for version in $(pyenv whence uv 2>/dev/null); do
            candidate="$(pyenv root)/versions/$version/bin/uv"
            if works "$candidate"; then echo "$candidate"; return 0; fi
        done
    fi
    if works "$PRIVATE/bin/uv"; then echo "$PRIVATE/bin/uv"; return 0; fi
    return 1
}

install_private() {
    for python in python3 python; do
        if "$python" -c "import venv, ensurepip" >/dev/null 2>&1; then
            echo "uv not found: installing it into $PRIVATE (needs the package index)" >&2
            rm -rf "$PRIVATE"
            "$python" -m venv "$PRIVATE" >&2 \
                && "$PRIVATE/bin/python" -m pip install --quiet --disable-pip-version-check uv==0.13.9 >&2 \
                && works "$PRIVATE/bin/uv" && return 0
            break
        fi
    done
    echo "error: cannot install uv: install it (https://docs.astral.sh/uv/getting-started/installation/)" \
        "or a Python with venv and ensurepip (Debian/Ubuntu: apt install python3-venv)" >&2
    return 1
}

if find_uv; then exit 0; fi
if [ "${1:-}" = install ]; then
    install_private || exit 1
fi
echo "$PRIVATE/bin/uv"
