#!/bin/sh
# Create the project's environment from the lock file; quick and quiet when already done.
#   .tools/  a private venv holding a pinned uv (skipped when .tools/bin/uv exists)
#   .venv/   the project's environment: `uv sync --frozen --all-groups` on this machine's python3
set -eu
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
UV=.tools/bin/uv

if [ ! -x "$UV" ] || [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
    python3 -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# Never download a Python build: use the machine's interpreter (3.11+).
UV_PYTHON_DOWNLOADS=never "$UV" sync --frozen --all-groups --python python3 --quiet
