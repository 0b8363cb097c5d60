#!/usr/bin/env bash
# The GPU benchmarks of issue #11 on the lent machine (prepare with benchmarks/device_bundle.sh first). A session
# has 15 device-minutes in all, start-up (about 1 min) included, one command may run 10 minutes, and the machine
# goes back 30 s after a call; so two calls, the second sent as soon as the first returns:
#     run(command="SR4K_DEADLINE_S=540 bash benchmarks/device_run.sh toggles node sdpa noise", carry=[".devbundle"],
#         timeout_s=560)                     # the eager defaults, the headline rows, the node path: ~6-7 min
#     run(command="SR4K_DEADLINE_S=<left - 20> bash benchmarks/device_run.sh compile2", carry=[".devbundle"],
#         timeout_s=<left - 10>)             # the compiled paths, in order of interest, as far as the budget goes
# (<left>: the first reply's lease.budget_left_s.) Diagnostics for a later lease: kernels, layout, roofline, folder,
# inspect, tiledhost.
# Steps (each under its own time limit, so one that hangs cannot take the others' results with it):
#   node      benchmarks/node_path.py: ComfyUI node path vs headless, on a simulated 80 GiB card (~2-4 min)
#   node-compile  the same plus the compiled paths (headless regional vs core TorchCompileModel; ~4-6 min)
#   compile2  benchmarks/perf_toggles.py --parts compile2: compiled VAE / GTASR / fp8 transformer (~5-7 min)
#   gtasr     benchmarks/perf_toggles.py --parts gtasr: the GTASR toggles (box resample among them; ~1 min)
#   roofline  benchmarks/roofline_gpu.py: every op's GPU time against its roofline bound (< 1 min)
#   toggles   benchmarks/perf_toggles.py --parts vae,op4ksr,gtasr: the eager toggles again (~2.5 min)
#   vae       benchmarks/perf_toggles.py --parts vae: the F16 VAE toggles (channels_last +- NHWC GroupNorm; ~1 min)
#   kernels   benchmarks/kernel_profile.py: CUDA kernel time by class, NCHW vs channels_last (< 1 min)
#   sdpa      benchmarks/sdpa_backends.py: which SDPA backend the GTASR window attention takes, and each one's time
#   folder    benchmarks/folder_io.py --model gtasr: a folder of 1024² PNGs to 4096² with --io-workers 0/1/2/4 (~1 min)
#   layout    benchmarks/layout_audit.py: the ops breaking channels_last in GTASR (LR 256) and the VAE (1024²; < 1 min)
#   noise     benchmarks/noise_field.py: a new seed's 4K noise field, counter vs CPU stream, CPU and GPU (< 1 min)
#   inspect   benchmarks/inspect_artifacts.py --no-cpu: SR4K Inspect Artifacts at 3840x2160 and 4096² (< 1 min)
#   tiledhost benchmarks/gtasr_tiled_host.py: what a tiled GTASR run costs beyond the network, this version against
#             the bundle's baseline.tar, stand-in network on the GPU (< 1 min)
# Results (Markdown sections for benchmarks/RESULTS.md, JSON, logs) are written to $OUT and come back.
set -uo pipefail
OUT=${OUT:-/tmp/sr4k-out}
mkdir -p "$OUT"
B=.devbundle
[ -d "$B/whl" ] || { echo "no $B: run benchmarks/device_bundle.sh here and carry .devbundle" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$B"/whl/*.whl ||
    exit 3
tar -C /tmp -xzf "$B/ComfyUI.tgz"
mkdir -p /tmp/pk && ln -sfn "$PWD" /tmp/pk/sr4k # 'import sr4k' = this repository, as in the test venv
export PYTHONPATH=/tmp/site:/tmp/pk PYTHONUNBUFFERED=1 SR4K_COMFY_TREE=/tmp/ComfyUI
REV=$(head -1 "$B/commit")$(grep -q dirty "$B/commit" && echo "+dirty")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/run.log"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" |
    tee -a "$OUT/run.log"
STEPS=${*:-sdpa gtasr vae kernels noise}
start=$SECONDS
# SR4K_DEADLINE_S: seconds from here that the whole call may take (set it a little under the call's timeout_s). Each
# step's own limit is cut to what is left, compile2's budget with it, and a step with under 20 s left is skipped, so
# the steps that ran return their results instead of the call being killed mid-step.
DEADLINE=${SR4K_DEADLINE_S:-100000}
tmo() { # tmo N: N seconds, or what is left before the deadline if that is less
    local left=$((DEADLINE - (SECONDS - start) - 5))
    echo $((left < $1 ? left : $1))
}
for step in $STEPS; do
    echo "=== $step at $((SECONDS - start)) s" | tee -a "$OUT/run.log"
    if [ "$(tmo 20)" -lt 20 ]; then
        echo "skipped: under 20 s left before SR4K_DEADLINE_S=$DEADLINE" | tee -a "$OUT/run.log"
        continue
    fi
    case $step in
    node)
        timeout "$(tmo 300)" python3 benchmarks/node_path.py --comfy-dir /tmp/ComfyUI --card-gib 80 --commit "$REV" \
            --json "$OUT/node.json" --results "$OUT/RESULTS_node.md" 2>&1 | tail -40 | tee -a "$OUT/run.log"
        ;;
    node-compile)
        timeout "$(tmo 420)" python3 benchmarks/node_path.py --comfy-dir /tmp/ComfyUI --card-gib 80 --compile --commit "$REV" \
            --json "$OUT/node_compile.json" --results "$OUT/RESULTS_node_compile.md" 2>&1 | tail -40 |
            tee -a "$OUT/run.log"
        ;;
    compile2)
        timeout "$(tmo 430)" python3 benchmarks/perf_toggles.py --parts compile2 --budget-s "$(($(tmo 430) - 30))" --commit "$REV" \
            --json "$OUT/compile2.json" --results "$OUT/RESULTS_compile2.md" 2>&1 | tail -60 | tee -a "$OUT/run.log"
        ;;
    roofline)
        timeout "$(tmo 150)" python3 benchmarks/roofline_gpu.py --commit "$REV" --json "$OUT/roofline_gpu.json" \
            --results "$OUT/RESULTS_roofline_gpu.md" 2>&1 | tail -60 | tee -a "$OUT/run.log"
        ;;
    gtasr)
        timeout "$(tmo 150)" python3 benchmarks/perf_toggles.py --parts gtasr --budget-s "$(($(tmo 150) - 10))" --commit "$REV" \
            --json "$OUT/gtasr.json" --results "$OUT/RESULTS_gtasr.md" 2>&1 | tail -30 | tee -a "$OUT/run.log"
        ;;
    vae)
        timeout "$(tmo 150)" python3 benchmarks/perf_toggles.py --parts vae --budget-s "$(($(tmo 150) - 10))" --commit "$REV" \
            --json "$OUT/vae.json" --results "$OUT/RESULTS_vae.md" 2>&1 | tail -30 | tee -a "$OUT/run.log"
        ;;
    kernels)
        timeout "$(tmo 120)" python3 benchmarks/kernel_profile.py --commit "$REV" --json "$OUT/kernels.json" \
            --results "$OUT/RESULTS_kernels.md" 2>&1 | tail -60 | tee -a "$OUT/run.log"
        ;;
    folder)
        timeout "$(tmo 150)" python3 benchmarks/folder_io.py --model gtasr --commit "$REV" --json "$OUT/folder.json" \
            --results "$OUT/RESULTS_folder.md" 2>&1 | tail -20 | tee -a "$OUT/run.log"
        ;;
    sdpa)
        timeout "$(tmo 90)" python3 benchmarks/sdpa_backends.py --commit "$REV" --json "$OUT/sdpa.json" \
            --results "$OUT/RESULTS_sdpa.md" 2>&1 | tail -40 | tee -a "$OUT/run.log"
        ;;
    toggles)
        timeout "$(tmo 240)" python3 benchmarks/perf_toggles.py --parts vae,op4ksr,gtasr --budget-s "$(($(tmo 240) - 20))" --commit "$REV" \
            --json "$OUT/toggles.json" --results "$OUT/RESULTS_toggles.md" 2>&1 | tail -60 | tee -a "$OUT/run.log"
        ;;
    layout)
        timeout "$(tmo 90)" python3 benchmarks/layout_audit.py --commit "$REV" --json "$OUT/layout.json" \
            --results "$OUT/RESULTS_layout.md" 2>&1 | tail -80 | tee -a "$OUT/run.log"
        ;;
    noise)
        timeout "$(tmo 90)" python3 benchmarks/noise_field.py --commit "$REV" --json "$OUT/noise.json" \
            --results "$OUT/RESULTS_noise.md" 2>&1 | tail -20 | tee -a "$OUT/run.log"
        ;;
    inspect)
        timeout "$(tmo 120)" python3 benchmarks/inspect_artifacts.py --no-cpu --commit "$REV" --json "$OUT/inspect.json" \
            --results "$OUT/RESULTS_inspect.md" 2>&1 | tail -20 | tee -a "$OUT/run.log"
        ;;
    tiledhost)
        timeout "$(tmo 120)" python3 benchmarks/gtasr_tiled_host.py --device cuda --baseline-tar "$B/baseline.tar" \
            --commit "$REV" --json "$OUT/tiledhost.json" --results "$OUT/RESULTS_tiledhost.md" 2>&1 | tail -20 |
            tee -a "$OUT/run.log"
        ;;
    *) echo "unknown step $step (node, node-compile, compile2, roofline, gtasr, vae, kernels, sdpa, layout, toggles, noise, inspect, tiledhost)" | tee -a "$OUT/run.log" ;;
    esac
done
echo "=== done in $((SECONDS - start)) s" | tee -a "$OUT/run.log"
