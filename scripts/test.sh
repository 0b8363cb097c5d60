#!/usr/bin/env bash
# The one test command (README, .ci/run): install what the tests need, check formatting and lint, run every test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not comfy" -x`.
# Against another ComfyUI tree (used in place; its venv is built in the work folder):
#   SR4K_COMFY_TREE=/x/ComfyUI SR4K_COMFY_WORK=/x bash scripts/test.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Absolute paths: the tests run from the repository root and read these too (tests/comfy_harness.py).
if [ -n "${SR4K_COMFY_WORK:-}" ]; then mkdir -p "$SR4K_COMFY_WORK"; SR4K_COMFY_WORK=$(cd "$SR4K_COMFY_WORK" && pwd); export SR4K_COMFY_WORK; fi
if [ -n "${SR4K_COMFY_TREE:-}" ] && [ -d "$SR4K_COMFY_TREE" ]; then SR4K_COMFY_TREE=$(cd "$SR4K_COMFY_TREE" && pwd); export SR4K_COMFY_TREE; fi
bash "$REPO/scripts/test_env.sh"
VENV=${SR4K_COMFY_WORK:-$REPO/.cache/comfyui}/venv
cd "$REPO"
"$VENV/bin/ruff" format --check .
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -ra "$@"
