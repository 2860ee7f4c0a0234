#!/usr/bin/env bash
# One entry point for a fresh machine:
#   scripts/dev.sh demo   set everything up, record the demo run, open it in JupyterLab
#   scripts/dev.sh test   set everything up, check lint, format and types, run the whole test suite
#                         (the JavaScript unit tests, then pytest, browser tests included)
# NBDEBUG_HEADLESS=1 makes `demo` start JupyterLab without trying to open a browser.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY="$VENV/bin/python"

setup() {
    # The JS bundle first: building the nbdebug wheel needs it.
    echo "==> building the frontend"
    npm ci --no-audit --no-fund --loglevel=error
    npm run --silent build
    if [ ! -x "$PY" ]; then
        echo "==> creating virtual environment in $VENV"
        python3 -m venv "$VENV"
    fi
    # Reinstall only when the dependency files changed since the last setup.
    local stamp="$VENV/.nbdebug-setup" digest
    digest=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        echo "==> installing Python dependencies (CPU torch pinned by constraints.txt)"
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet -c constraints.txt -e ".[dev]"
        echo "$digest" > "$stamp"
    fi
}

check_code() {
    # Any failure stops the run (set -e), before the tests.
    echo "==> ruff check, ruff format --check, mypy, biome"
    "$VENV/bin/ruff" check --quiet .
    "$VENV/bin/ruff" format --check --quiet .
    "$VENV/bin/mypy"
    npm run --silent lint
}

ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then return; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian's chromium for the browser tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "browser tests need Chromium on PATH: run 'sudo apt-get install chromium'" >&2
        exit 1
    fi
}

case "${1:-}" in
    demo)
        setup
        echo "==> recording the demo run into runs/demo"
        "$PY" -m nbdebug.demo runs/demo
        echo "==> starting JupyterLab on notebooks/quickstart.ipynb"
        args=(--ServerApp.ip=127.0.0.1 --ServerApp.root_dir=.)
        if [ "$(id -u)" = 0 ]; then args+=(--ServerApp.allow_root=True); fi
        if [ "${NBDEBUG_HEADLESS:-}" = 1 ] || [ -n "${CI:-}" ]; then args+=(--no-browser); fi
        exec "$VENV/bin/jupyter" lab notebooks/quickstart.ipynb "${args[@]}"
        ;;
    test)
        setup
        check_code
        echo "==> JavaScript unit tests"
        npm run --silent test
        ensure_chromium
        shift
        exec "$PY" -m pytest "$@"
        ;;
    *)
        echo "usage: scripts/dev.sh demo|test [pytest args]" >&2
        exit 2
        ;;
esac
