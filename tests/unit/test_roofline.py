"""benchmarks/roofline_count.py and roofline.py: the per-op FLOP and byte accounting against closed forms,
the roofline bound formula, the op classification, the fused bound's rules, and a smoke run of the script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import roofline  # noqa: E402  (a script folder, not a package)
import roofline_count as rc  # noqa: E402
from flops import FLUX_DEV, flux_flops  # noqa: E402
from roofline_record import OpRecorder  # noqa: E402

BF16 = 2  # bytes


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


def run(fn, modules: dict | None = None) -> list[rc.OpRecord]:
    rec = OpRecorder(modules or {})
    with rec, torch.no_grad():
        fn()
    return rec.records


def test_conv2d_flops_bytes_and_bound_are_the_closed_forms() -> None:
    cin, cout, k, h, w = 48, 80, 3, 64, 96
    x, wt, b = meta(1, cin, h, w), meta(cout, cin, k, k), meta(cout)
    (r,) = run(lambda: F.conv2d(x, wt, b, padding=1))
    assert (r.kind, r.where, r.op) == ("conv", "device", "convolution")
    assert r.flops == 2 * cin * cout * k * k * h * w  # per output pixel: Cin k^2 multiply-adds per channel
    nbytes = (cin * h * w + cout * cin * k * k + cout + cout * h * w) * BF16  # input + weight + bias + output
    assert r.nbytes == r.fused_bytes == nbytes
    assert r.eager_s == r.fused_s == max(r.flops / rc.PEAK_FLOPS, nbytes / rc.HBM_BYTES_S)


def test_float32_gemm_is_charged_at_the_tf32_rate() -> None:
    recs = run(
        lambda: F.conv2d(meta(1, 256, 64, 64, dtype=torch.float32), meta(256, 256, 3, 3, dtype=torch.float32))
    )
    (r,) = recs
    assert r.peak == rc.TF32_FLOPS == rc.PEAK_FLOPS / 2
    assert r.eager_s == pytest.approx(r.flops / rc.TF32_FLOPS)  # compute-bound: 2*256*256*9 FLOP per 2 KiB


def test_group_norm_moves_input_output_params_and_statistics_and_is_fused_away() -> None:
    c, groups, h, w = 64, 32, 128, 128
    (r,) = run(lambda: F.group_norm(meta(1, c, h, w), groups, meta(c), meta(c)))
    assert (r.kind, r.op, r.flops) == ("norm", "native_group_norm", 0)
    # x in, y out, weight + bias, and mean and rstd per (batch, group) out, all in x's dtype
    assert r.nbytes == 2 * c * h * w * BF16 + 2 * c * BF16 + 2 * groups * BF16
    assert r.eager_s == r.nbytes / rc.HBM_BYTES_S
    assert r.fused_bytes == 0 and r.fused_s == 0.0


def test_bound_is_the_max_of_compute_and_memory_time() -> None:
    assert rc.op_bound_s(790e12, 1.0) == pytest.approx(1.0)  # compute-bound
    assert rc.op_bound_s(1.0, 4.3e12) == pytest.approx(1.0)  # memory-bound
    assert rc.op_bound_s(2 * 790e12, 4.3e12) == pytest.approx(2.0)
    assert rc.RIDGE == pytest.approx(790 / 4.3)


@pytest.mark.parametrize(
    ("op", "pointwise", "context", "act_act", "kind"),
    [
        ("convolution", False, "", False, "conv"),
        ("convolution", False, "attention", False, "conv"),  # a projection inside attention stays a GEMM
        ("addmm", False, "", False, "matmul"),
        ("bmm", False, "", True, "attention"),  # q kᵀ, p v: two activations
        ("_scaled_dot_product_efficient_attention", False, "", False, "attention"),
        ("native_group_norm", False, "", False, "norm"),
        ("native_layer_norm", False, "attention", False, "norm"),
        ("upsample_nearest2d", False, "", False, "upsample"),
        ("add", True, "", False, "elementwise"),
        ("mul", True, "norm", False, "norm"),  # RMSNorm written as elementwise ops
        ("_softmax", False, "attention", False, "attention"),
        ("cat", False, "", False, "copy"),
        ("_to_copy", False, "", False, "copy"),
        ("mean", False, "", False, "other"),
    ],
)
def test_classify(op: str, pointwise: bool, context: str, act_act: bool, kind: str) -> None:
    assert rc.classify(op, pointwise, context, act_act) == kind


def test_views_are_free_and_broadcast_inputs_count_once() -> None:
    x = meta(8, 16)
    assert run(lambda: (x.view(16, 8), x.t(), x.unsqueeze(0), x[2:])) == []
    e = meta(1, 16).expand(8, 16)
    assert rc.tensor_bytes(e) == 16 * BF16
    (r,) = run(lambda: x + e)
    assert r.kind == "elementwise" and r.nbytes == (8 * 16 + 16 + 8 * 16) * BF16


def test_weight_linear_is_matmul_and_activation_product_is_flash_attention() -> None:
    lin = torch.nn.Linear(64, 96, device="meta", dtype=torch.bfloat16)
    x = meta(1, 10, 64)
    recs = run(lambda: lin(x), {"proj": lin})
    (mm,) = [r for r in recs if r.op == "addmm"]
    assert (mm.kind, mm.stage, mm.flops) == ("matmul", "proj", 2 * 10 * 64 * 96)
    n, big, d = 32, 4096, 128
    q, kt, v = meta(1, n, d), meta(1, d, big), meta(1, big, d)
    qk, pv = run(lambda: torch.bmm(torch.bmm(q, kt), v))
    assert qk.kind == pv.kind == "attention"
    # flash: the n x N scores never reach memory; q kᵀ moves q and k, p v moves v and the output
    assert qk.fused_bytes == (n * d + d * big) * BF16 and pv.fused_bytes == (big * d + n * d) * BF16
    assert qk.nbytes == (n * d + d * big + n * big) * BF16


def test_sdpa_is_one_fused_op_not_its_meta_decomposition() -> None:
    b, h, lq, lk, d = 1, 4, 256, 512, 64
    q, k, v = meta(b, h, lq, d), meta(b, h, lk, d), meta(b, h, lk, d)
    (r,) = run(lambda: F.scaled_dot_product_attention(q, k, v))
    assert (r.op, r.kind) == ("scaled_dot_product_attention", "attention")
    assert r.flops == 4 * b * h * lq * lk * d
    assert r.nbytes == r.fused_bytes == (2 * b * h * lq * d + 2 * b * h * lk * d) * BF16


def test_transfers_use_the_host_link_and_host_ops_cost_nothing() -> None:
    x = meta(1, 3, 256, 256, dtype=torch.float32)
    recs = run(lambda: (x.cpu() + 1, torch.ones(4).to("meta")))
    d2h, host, h2d = recs[0], recs[1], recs[-1]
    assert d2h.where == "transfer" and d2h.nbytes == 3 * 256 * 256 * 4
    assert d2h.eager_s == d2h.fused_s == d2h.nbytes / rc.PCIE_BYTES_S
    assert host.where == "host" and host.eager_s == 0.0
    assert h2d.where == "transfer" and h2d.nbytes == 16
    assert rc.summarize(recs, lambda r: "all")["all"].nbytes == d2h.nbytes + h2d.nbytes


def test_eager_sums_every_op_and_fused_only_the_gemms() -> None:
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, device="meta", dtype=torch.bfloat16)
    x = meta(1, 32, 64, 64)
    recs = run(lambda: F.silu(conv(x)) + x, {"block": conv})
    kinds = [r.kind for r in recs]
    assert kinds == ["conv", "elementwise", "elementwise"]
    t = rc.summarize(recs, lambda r: "all")["all"]
    assert t.eager_s == pytest.approx(sum(r.eager_s for r in recs))
    assert t.fused_s == pytest.approx(recs[0].eager_s) and t.fused_bytes == recs[0].nbytes
    assert [r.stage for r in recs] == ["block", "other", "other"]


def test_tiny_flux_counted_flops_equal_the_analytical_count() -> None:
    from diffusers import FluxTransformer2DModel

    cfg = {**FLUX_DEV, "num_layers": 1, "num_single_layers": 2, "num_attention_heads": 2}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**cfg).to(torch.bfloat16)
    n_img, n_txt = 64, 3
    side = 8
    ids = torch.zeros(side, side, 3)
    ids[..., 1], ids[..., 2] = torch.arange(side)[:, None], torch.arange(side)
    recs = run(
        lambda: model(
            hidden_states=meta(1, n_img, cfg["in_channels"]),
            encoder_hidden_states=meta(1, n_txt, cfg["joint_attention_dim"]),
            pooled_projections=meta(1, cfg["pooled_projection_dim"]),
            timestep=meta(1),
            img_ids=ids.reshape(-1, 3).to("meta"),
            txt_ids=torch.zeros(n_txt, 3, device="meta"),
            guidance=meta(1),
            return_dict=False,
        ),
        {"transformer": model},
    )
    assert sum(r.flops for r in recs) == flux_flops(cfg, n_img, n_txt)["exact"]
    assert sum(r.op == "scaled_dot_product_attention" for r in recs) == 3  # one per block, none decomposed


def test_measured_numbers_are_the_rows_of_results_md() -> None:
    text = (BENCH / "RESULTS.md").read_text(encoding="utf-8")
    assert roofline.SOURCE.split("'")[1] in text
    for _, _, seconds, row in roofline.MEASURED:
        lines = [ln for ln in text.splitlines() if ln.startswith(f"| {row} |")]
        assert any(f"{seconds:.3f}" in ln for ln in lines), (row, seconds)


def test_smoke_run_prints_all_tables(tmp_path: Path) -> None:
    out = tmp_path / "R.md"
    text = roofline.main(["--smoke", "--results", str(out)])
    assert out.read_text(encoding="utf-8").strip() == ("# Benchmark results\n\n" + text).strip()
    for title in ("Per stage:", "Bound by op kind", "Blocks with the largest", "below the ridge point"):
        assert title in text
    assert "| OP4KSR | **total** |" in text and "| GTASR | **total** |" in text
    assert "not a GPU measurement" in text


def test_timed_recorder_times_every_recorded_op_on_the_cpu() -> None:
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(1, 16, 64, 64)
    rec = OpRecorder({"conv": conv}, device="cpu", timed=True)
    with rec, torch.no_grad():
        y = F.silu(conv(x)) + x
    times = rec.op_seconds()
    assert [r.kind for r in rec.records] == ["conv", "elementwise", "elementwise"]
    assert all(r.where == "device" for r in rec.records)  # device="cpu": the CPU is the device
    assert len(times) == 3 and all(t > 0 for t in times)
    assert rec.records[0].flops == 2 * 16 * 16 * 9 * 64 * 64 and y.shape == x.shape


def test_gpu_script_smoke_on_the_cpu(tmp_path: Path) -> None:
    import roofline_gpu

    out = roofline_gpu.main(
        ["--smoke", "--device", "cpu", "--parts", "gtasr", "--no-write", "--json", str(tmp_path / "r.json")]
    )
    ops = out["GTASR"]["ops"]
    assert ops and all(o["seconds"] >= 0 for o in ops)
    assert sum(o["kind"] == "conv" for o in ops) > 10
    assert "| GTASR | network | conv |" in out["text"] and "lost ms" in out["text"]
    assert (tmp_path / "r.json").stat().st_size > 1000
