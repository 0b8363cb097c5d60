#!/usr/bin/env bash
# The one test command (README, .ci/run): install what the tests need, lint, run every test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not comfy" -x`.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO/scripts/test_env.sh"
VENV=${SR4K_COMFY_WORK:-$REPO/.cache/comfyui}/venv
cd "$REPO"
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -ra "$@"
