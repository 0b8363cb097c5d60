"""benchmarks/kernel_profile.py: kernel-name classification (CUDA names as the profiler reports them) and a
smoke run of the script on the CPU, where it classifies aten ops instead of kernels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import kernel_profile as kp  # noqa: E402  (a script folder, not a package)


@pytest.mark.parametrize(
    "name,cls",
    [
        (
            "void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, false, true>(...)",
            "layout transform",
        ),
        ("void xmma_cudnn::implicit_gemm::sm90_fprop_bf16 ... nhwckrsc_nhwc", "convolution"),
        (
            "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x256x64",
            "convolution",
        ),
        (
            "void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<c10::BFloat16, float>(...)",
            "group norm",
        ),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel(...)>", "elementwise"),
        ("void at::native::elementwise_kernel<128, 4, direct_copy_kernel_cuda(...)>", "copy / cast"),
        ("Memcpy HtoD (Pinned -> Device)", "copy / cast"),
        (
            "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t>>",
            "reduction",
        ),
        ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<32, 128, 128, 4>>", "attention"),
        ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", "gemm"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "gemm"),
        ("void at::native::upsample_nearest2d_nhwc_out_frame<c10::BFloat16>(...)", "upsample / pool"),
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::native_group_norm", "group norm"),
        ("some_unknown_kernel_x", "other"),
    ],
)
def test_classify(name: str, cls: str) -> None:
    assert kp.classify(name) == cls


def test_short_drops_template_arguments() -> None:
    assert kp.short("void f<int, g<a>>(float) const") == "void f(float) const"
    assert kp.short("x" * 200, 10) == "x" * 9 + "…"


def test_smoke_run_on_cpu(tmp_path: Path) -> None:
    out = kp.main(
        ["--smoke", "--device", "cpu", "--parts", "gtasr", "--no-write", "--json", str(tmp_path / "k.json")]
    )
    runs = json.loads((tmp_path / "k.json").read_text())
    assert set(runs) == {f"GTASR 32² -> 128² | {v}" for v in kp.VARIANTS}
    for r in runs.values():
        assert r["classes"]["convolution"] > 0 and r["classes"]["group norm"] > 0
        assert sum(r["classes"].values()) <= r["wall_s"] * 1.05  # self times of one profiled call
    assert "| GTASR 32² -> 128² | channels_last + NHWC GroupNorm |" in out["text"]
