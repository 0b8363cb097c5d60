"""benchmarks/layout_count.py and layout_audit.py: the layout of a tensor from its strides, the breaks found in a
model with planted NHWC -> NCHW conversions (op, kind, module, count and bytes against hand counts), none in
NCHW runs, and the audit script on the toy GTASR and F16 VAE in channels_last on the CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import layout_audit  # noqa: E402  (a script folder, not a package)
import layout_count as lc  # noqa: E402

from sr4k.gtasr_core import GTASRNet  # noqa: E402
from sr4k.gtasr_core.config import TINY  # noqa: E402

CL = torch.channels_last
F32 = 4  # bytes


def lay(t: torch.Tensor) -> str:
    return lc.layout_of(t.shape, t.stride())


def test_layout_of_reads_the_stride_order_and_flags_ambiguous_shapes() -> None:
    x = torch.empty(2, 8, 5, 6)
    cl = x.contiguous(memory_format=CL)
    assert (lay(x), lay(cl)) == ("nchw", "nhwc")
    # Views keep the layout their strides say (a channel chunk as VAE moments.chunk, a row slab as the heads).
    assert lay(cl[:, :4]) == "nhwc" and lay(cl[..., 1:3, :]) == "nhwc" and lay(x[:, 2:5]) == "nchw"
    assert lay(cl[:, :, :1]) == "nhwc"  # H == 1 but C, W > 1: still unambiguous
    assert lay(torch.empty(2, 5, 6, 8).permute(0, 3, 1, 2)) == "nhwc"  # tokens [B, H, W, C] seen as an image
    assert lay(x.permute(0, 2, 3, 1)) == "other"
    # C == 1 or H == W == 1: contiguous in both formats; broadcast (stride-0) dims carry no layout.
    for t in (torch.empty(2, 1, 5, 6), torch.empty(2, 8, 1, 1)):
        assert lay(t) == "both" and lay(t.contiguous(memory_format=CL)) == "both"
    assert lay(torch.empty(1, 8, 1, 1).expand(2, 8, 5, 6)) == "both"
    # Unambiguous cases agree with torch's own contiguity tests.
    for t in (x, cl, torch.empty(3, 4, 1, 7), torch.empty(3, 4, 1, 7, memory_format=CL)):
        assert (lay(t) == "nhwc") == (t.is_contiguous(memory_format=CL) and not t.is_contiguous())
    with pytest.raises(ValueError, match="4-D"):
        lc.layout_of((2, 3, 4), (12, 4, 1))


class ForcedNCHWNorm(nn.GroupNorm):
    """GroupNorm on ``x.contiguous()``, as torch's CUDA GroupNorm does: the planted break."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.contiguous(), self.num_groups, self.weight, self.bias, self.eps)


class Planted(nn.Module):
    def __init__(self, norm: type[nn.GroupNorm] = ForcedNCHWNorm) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, 8, 3, padding=1) for c in (4, 8))
        self.norms = nn.ModuleList(norm(2, 8) for _ in range(2))
        self.conv_out = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.silu(norm(conv(x)))
        return self.conv_out(x)


def audit(net: nn.Module, x: torch.Tensor) -> lc.LayoutAudit:
    rec, _ = layout_audit.audit(lambda: net(x), {"net": net})
    return rec


def test_planted_contiguous_is_found_with_op_module_count_and_bytes() -> None:
    net = Planted().eval().to(memory_format=CL)
    x = torch.randn(1, 4, 6, 10).contiguous(memory_format=CL)
    rec = audit(net, x)
    map_bytes = 2 * 8 * 6 * 10 * F32  # read + write of one [1, 8, 6, 10] float32 map
    # Each norm transposes its NHWC input; the conv after it is fed the NCHW result (NHWC weights).
    got = [(b.op, b.kind, b.module, b.shape, b.dtype, b.bytes_moved) for b in rec.breaks]
    assert got == [
        ("clone", "nhwc->nchw", "net.norms.0", (1, 8, 6, 10), "float32", map_bytes),
        ("convolution", "conv fed NCHW", "net.convs.1", (1, 8, 6, 10), "float32", map_bytes),
        ("clone", "nhwc->nchw", "net.norms.1", (1, 8, 6, 10), "float32", map_bytes),
        ("convolution", "conv fed NCHW", "net.conv_out", (1, 8, 6, 10), "float32", map_bytes),
    ]
    rows = {(r.op, r.kind): r for r in rec.rows()}
    assert rows["clone", "nhwc->nchw"].count == 2 and rows["clone", "nhwc->nchw"].bytes_moved == 2 * map_bytes
    assert rows["clone", "nhwc->nchw"].modules == 2 and rows["convolution", "conv fed NCHW"].count == 2
    assert len(rec.rows(by_module=True)) == 4 and rec.nhwc_ops > 0
    # The same network with the layout-keeping (CPU) GroupNorm: no break at all.
    keep = Planted(nn.GroupNorm).eval().to(memory_format=CL)
    keep.load_state_dict(net.state_dict())
    clean = audit(keep, x)
    assert clean.breaks == [] and clean.nhwc_ops >= 7  # 3 convs, 2 norms, 2 silu on NHWC maps
    torch.testing.assert_close(keep(x), net(x))  # same maths, only the layout differs


def test_conv_with_a_weight_left_nchw_and_explicit_conversions() -> None:
    x, w = torch.randn(1, 6, 5, 7), torch.randn(4, 6, 3, 3)
    xc, w1 = x.contiguous(memory_format=CL), torch.randn(4, 6, 1, 1).contiguous(memory_format=CL)
    with lc.LayoutAudit() as rec, torch.no_grad():
        F.conv2d(xc, w)  # NHWC input, NCHW weight
        F.conv2d(x, w)  # all NCHW: fine
        # A 1x1 weight is contiguous in both layouts (channels_last keeps its strides): the conv follows its input.
        F.conv2d(x, w1)
        x.contiguous(memory_format=CL)  # NCHW -> NHWC, explicit
        x.permute(0, 2, 3, 1).contiguous()  # a copy of a permuted view ("other"): not an image layout change
    assert [(b.op, b.kind, b.module, b.bytes_moved) for b in rec.breaks] == [
        ("convolution", "conv weight NCHW", "-", 2 * w.numel() * F32),
        ("clone", "nchw->nhwc", "-", 2 * x.numel() * F32),
    ]
    assert rec.ops == 5 and rec.nhwc_ops == 1


def test_find_breaks_rules_on_hand_made_layouts() -> None:
    nchw, nhwc = torch.empty(1, 8, 4, 6), torch.empty(1, 8, 4, 6, memory_format=CL)
    w, w_cl = torch.empty(8, 8, 3, 3), torch.empty(8, 8, 3, 3, memory_format=CL)
    other = torch.empty(1, 4, 6, 8).permute(0, 2, 1, 3)
    assert lc.find_breaks("native_group_norm", [nhwc], [nchw]) == [("nhwc->nchw", nchw)]
    assert lc.find_breaks("cat", [nhwc, nhwc], [other]) == [("nhwc->other", other)]
    assert lc.find_breaks("add", [nhwc, nchw], [nhwc]) == [("nchw->nhwc", nhwc)]  # mixed layouts
    assert lc.find_breaks("new_zeros", [nhwc], [nchw]) == [("alloc nchw", nchw)]
    assert lc.find_breaks("convolution", [nhwc, w_cl], [nchw]) == [("nhwc->nchw", nchw)]  # layout dropped
    assert lc.find_breaks("convolution", [nchw, w_cl], [nhwc]) == [("conv fed NCHW", nchw)]
    assert lc.find_breaks("convolution", [nhwc, w], [nhwc]) == [("conv weight NCHW", w)]
    for op, ins, outs in (
        ("convolution", [nhwc, w_cl], [nhwc]),
        ("convolution", [nchw, w], [nchw]),
        ("add", [nhwc, nhwc], [nhwc]),
        ("add", [nchw, nchw], [nchw]),
        ("clone", [other], [nchw]),  # not an image layout change (e.g. window partition)
        ("silu", [torch.empty(1, 1, 4, 6)], [torch.empty(1, 1, 4, 6)]),  # C == 1: both layouts
        ("mm", [torch.empty(4, 6)], [torch.empty(4, 6)]),  # no 4-D map
        ("add", [nhwc.int()], [torch.empty(1, 8, 4, 6, dtype=torch.int32)]),  # not floating point
    ):
        assert lc.find_breaks(op, ins, outs) == [], op


def test_all_nchw_runs_have_no_breaks() -> None:
    net = Planted().eval()
    rec = audit(net, torch.randn(1, 4, 6, 10))
    assert rec.breaks == [] and rec.nhwc_ops == 0 and rec.map_ops >= 7
    gtasr = layout_audit.random_init_(GTASRNet(TINY)).eval()
    rec = layout_audit.audit_gtasr(gtasr, torch.rand(1, 3, 16, 16), channels_last=False)
    assert rec.breaks == [] and rec.nhwc_ops == 0 and rec.map_ops > 100


def test_script_audits_the_toy_networks_in_channels_last(tmp_path: Path) -> None:
    out, md = tmp_path / "layout.json", tmp_path / "RESULTS_layout.md"
    args = ["--device", "cpu", "--tiny", "--gtasr-lr", "16", "--vae-px", "64", "--layouts", "channels_last"]
    results = layout_audit.main([*args, "--json", str(out), "--results", str(md), "--commit", "abc123"])
    assert [r["target"] for r in results] == ["gtasr", "vae encode", "vae decode"]
    for r in results:
        # Really run in NHWC; the per-op table adds up to the breaks.
        assert r["layout"] == "channels_last" and r["nhwc_ops"] > r["map_ops"] / 2
        assert sum(x["count"] for x in r["rows"]) == r["breaks"] == sum(x["count"] for x in r["by_module"])
    # The image enters NCHW (as in perf_parts): F16VAE.encode puts it in the network's layout (srkit/layout.py) with
    # one copy before the encoder, and nothing else breaks.
    enc = results[1]["rows"]
    assert [(x["op"], x["kind"], x["module"], x["count"]) for x in enc] == [("clone", "nchw->nhwc", "-", 1)]
    assert enc[0]["bytes_moved"] == 2 * 3 * 64 * 64 * F32
    assert json.loads(out.read_text())["results"] == json.loads(json.dumps(results))
    text = md.read_text()
    assert "## Layout audit (issue #11)" in text and "commit abc123" in text and "CPU" in text
    assert "| vae encode | channels_last |" in text


def test_script_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        layout_audit.main(["--device", "cpu", "--tiny", "--layouts", "nhwc", "--no-write"])
    with pytest.raises(SystemExit):
        layout_audit.main(["--device", "cpu", "--tiny", "--vae-px", "40", "--no-write"])
    with pytest.raises(SystemExit):
        layout_audit.main(["--device", "meta", "--tiny", "--no-write"])
