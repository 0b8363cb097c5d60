#!/usr/bin/env bash
# Prepare .devbundle/ (ignored by git) for the benchmarks on a lent GPU machine, which has torch, transformers,
# accelerate and most of ComfyUI's needs but no network: ComfyUI trees (Python sources only) and the wheels of
# the packages its image lacks. Then, with the device tool, one call runs them all:
#     bash benchmarks/device_bundle.sh                    # here (needs pip's access to PyPI)
#     run(command="bash benchmarks/device_run.sh", carry=[".devbundle"], timeout_s=560)
# Tree: $SR4K_COMFY_TREE or .cache/comfyui/ComfyUI (the CI tree, 0.3.75, made by scripts/test_env.sh). Newer trees
# (0.33) import comfy-kitchen, a 68 MB wheel: with av (36 MB) that is over the 64 MiB a call carries.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/.devbundle
TREE=${SR4K_COMFY_TREE:-$REPO/.cache/comfyui/ComfyUI}
PY=${PYTHON:-python3}
rm -rf "$OUT"
mkdir -p "$OUT/whl"

pack_tree() {  # pack_tree TREE NAME: the sources of a ComfyUI tree as NAME.tgz (extracts to NAME/)
    [ -f "$1/comfy/model_management.py" ] || { echo "no ComfyUI tree at $1" >&2; exit 1; }
    tar -C "$1" -czf "$OUT/$2.tgz" --transform "s,^\.,$2," --exclude=./tests --exclude=./tests-unit \
        --exclude='__pycache__' --exclude=./.git --exclude=./input --exclude=./output --exclude=./user \
        --exclude=./custom_nodes --exclude=./web --exclude='*.png' --exclude='*.jpg' .
}

wheels() {  # wheels NAME==VERSION...: cp312 manylinux x86-64 wheels of the device's Python, no dependencies
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$OUT/whl" "$@"
}

pinned() {  # the version installed here (the test venv), so the device runs what the tests ran
    "$PY" -c "import importlib.metadata as m, sys; print(f'{sys.argv[1]}=={m.version(sys.argv[1])}')" "$1" \
        2>/dev/null || echo "$1"
}

pack_tree "$TREE" ComfyUI
# Missing from the device image (KINDS.md of the device tool lists what it has): diffusers (+ importlib_metadata) for the headless
# path, av, torchsde and trampoline for ComfyUI's nodes.py.
wheels "$(pinned diffusers)" "$(pinned importlib_metadata)" "$(pinned av)" "$(pinned torchsde)" \
    "$(pinned trampoline)"
# The package as it was before the tiled-run changes of the sixth round, for gtasr_tiled_host.py's before/after rows
# (the device machine gets the working tree without git).
git -C "$REPO" archive -o "$OUT/baseline.tar" "${SR4K_BASELINE_REV:-7e90593}"
git -C "$REPO" rev-parse --short HEAD >"$OUT/commit"
git -C "$REPO" diff --quiet HEAD || echo "dirty" >>"$OUT/commit"
du -sh "$OUT" "$OUT"/* "$OUT"/whl/*
size=$(($(du -sb "$OUT" | cut -f1) + $(git -C "$REPO" ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)))
echo "carried with the working tree: $((size / 1048576)) MiB of 64"
[ "$size" -lt $((64 * 1048576)) ] || { echo "over the 64 MiB a device call carries" >&2; exit 1; }
