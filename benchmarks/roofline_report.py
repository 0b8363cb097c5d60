"""Tables of ``roofline.py``: per stage against the measured times, per op kind, per block, and the GEMM-like
ops below the ridge point. Each function returns ``(headers, rows)`` for ``common.markdown_table``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from roofline_count import KINDS, RIDGE, OpRecord, Totals, summarize

Rows = tuple[list[str], list[list[str]]]
OP4KSR_STAGES = ("encode", "transformer", "decode", "other")
GTASR_STAGES = ("network", "other")


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def _kind(r: OpRecord) -> str:
    return "transfer (PCIe)" if r.where == "transfer" else r.kind


def stage_rows(op4: list[OpRecord], gt: list[OpRecord], measured: tuple) -> Rows:
    """Network, stage: device ops, TFLOP, GB eager / fused, both bounds, measured s and bound / measured."""
    meas = {(n, st): s for n, st, s, _ in measured}
    headers = ["network", "stage", "device ops", "TFLOP", "GB eager", "eager ms", "GB fused", "fused ms"]
    headers += ["measured s", "eager / measured", "fused / measured"]
    rows = []
    for net, recs, stages in (("OP4KSR", op4, OP4KSR_STAGES), ("GTASR", gt, GTASR_STAGES)):
        lines = [(st, st, [r for r in recs if r.stage == st]) for st in stages]
        lines.append(("**total**", "total", recs))
        if net == "OP4KSR":  # the compiled run: same op counts, other measured times
            lines.append(("transformer, regional compile", None, lines[1][2]))
            lines.append(("total, regional compile", None, recs))
        for label, key, mine in lines:
            if not mine:
                continue
            t = summarize(mine, lambda r: "all")["all"]
            m = meas.get((net, key or label))
            eff = [f"{t.eager_s / m:.0%}", f"{t.fused_s / m:.0%}"] if m else ["-", "-"]
            if m and key is None:  # compiled code is not bound by the eager sum
                eff[0] = "n/a"
            ops = sum(r.where == "device" for r in mine)
            rows.append(
                [net, label, str(ops), f"{t.flops / 1e12:.2f}", f"{t.nbytes / 1e9:.1f}", _ms(t.eager_s)]
                + [f"{t.fused_bytes / 1e9:.1f}", _ms(t.fused_s), f"{m:.3f}" if m else "-", *eff]
            )
    return headers, rows


def kind_rows(nets: dict[str, tuple[list[OpRecord], tuple[str, ...]]]) -> Rows:
    """Rows: op kinds; columns: the given stages of each network; cells 'eager / fused' bound in ms."""
    cols: list[tuple[str, dict[str, Totals]]] = []
    for net, (recs, stages) in nets.items():
        for st in stages:
            cols.append((f"{net} {st}", summarize([r for r in recs if r.stage == st], _kind)))
    kinds = [k for k in (*KINDS, "transfer (PCIe)") if any(k in c for _, c in cols)]
    rows = []
    for k in kinds:
        cells = [f"{_ms(c[k].eager_s)} / {_ms(c[k].fused_s)}" if k in c else "-" for _, c in cols]
        rows.append([k, *cells])
    return ["kind (eager / fused ms)", *[name for name, _ in cols]], rows


def _largest_map(records: list[OpRecord]) -> str:
    best: tuple[int, ...] = ()
    for r in records:
        if r.kind not in ("conv", "upsample"):
            continue
        for s in r.shapes[-1:]:
            if len(s) == 4 and s[1] * s[2] * s[3] > (best[1] * best[2] * best[3] if best else 0):
                best = s
    return f"{best[1]}×{best[2]}×{best[3]}" if best else "-"


def top_blocks(nets: dict[str, tuple[list[OpRecord], Callable[[OpRecord], str]]], top: int) -> Rows:
    """Per network the ``top`` blocks by eager bound: TFLOP, bytes, both bounds, dominant kind."""
    headers = ["network", "block", "largest output (C×H×W)", "TFLOP", "GB eager", "eager ms", "fused ms"]
    headers += ["largest kind (eager ms)"]
    rows = []
    for net, (recs, key) in nets.items():
        recs = [r for r in recs if r.where != "host"]
        per = summarize(recs, key)
        for block, t in sorted(per.items(), key=lambda kv: -kv[1].eager_s)[:top]:
            mine = [r for r in recs if key(r) == block]
            kinds = summarize(mine, _kind)
            k, kt = max(kinds.items(), key=lambda kv: kv[1].eager_s)
            rows.append(
                [net, block, _largest_map(mine), f"{t.flops / 1e12:.2f}", f"{t.nbytes / 1e9:.1f}"]
                + [_ms(t.eager_s), _ms(t.fused_s), f"{k} ({_ms(kt.eager_s)})"]
            )
    return headers, rows


def signature(r: OpRecord) -> str:
    """Readable shape class of a GEMM-like op, e.g. 'conv 192->3 3x3 @ 4096x4096', 'linear 3072->12288'."""
    s = r.shapes
    if r.kind == "conv" and len(s) >= 3 and len(s[0]) == 4:
        x, w, y = s[0], s[1], s[-1]
        groups = x[1] // w[1] if w[1] else 1
        dw = " depthwise" if groups > 1 else ""
        return f"conv {x[1]}->{w[0]} {w[2]}x{w[3]}{dw} @ {y[2]}x{y[3]}"
    if r.op == "scaled_dot_product_attention":
        return f"sdpa {s[0][-2]}x{s[1][-2]} d={s[0][-1]}"
    if r.kind == "attention":
        return f"attention {r.op} {'x'.join(map(str, s[-1]))}"
    if r.op in ("addmm", "mm") and len(s) >= 3:
        a, b = s[-3], s[-2]
        return f"linear {b[0]}->{b[1]} ({a[0]} rows)"
    largest = max(s, key=lambda shape: _numel(shape), default=())
    return f"{r.op} {'x'.join(map(str, largest))}"


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def gemm_intensity(records: list[OpRecord]) -> dict[str, float]:
    """Share of the GEMM-like FLOPs below the ridge point and the fused bound of those ops."""
    gemm = [r for r in records if r.gemm]
    total = sum(r.flops for r in gemm) or 1
    below = [r for r in gemm if r.flops < RIDGE * r.fused_bytes]
    above = sorted((r.flops / r.fused_bytes, r.flops) for r in gemm if r.flops >= RIDGE * r.fused_bytes)
    # FLOP-weighted 10th and 90th percentile of the intensity of the compute-bound ops
    cum, p10, p90, above_flops = 0, 0.0, 0.0, sum(f for _, f in above) or 1
    for i, f in above:
        cum += f
        p10 = p10 or (i if cum >= 0.1 * above_flops else 0.0)
        if cum >= 0.9 * above_flops and not p90:
            p90 = i
    return {
        "below_flops_share": sum(r.flops for r in below) / total,
        "below_s": sum(r.fused_s for r in below),
        "above_p10": p10,
        "above_p90": p90,
    }


def efficiency_rows(nets: dict[str, list[OpRecord]], top: int = 5) -> Rows:
    """GEMM-like ops below the ridge point, grouped by shape class: count, TFLOP, intensity, fused bound."""
    headers = ["network", "op (below the ridge)", "calls", "TFLOP", "FLOP/byte", "fused ms"]
    rows = []
    for net, recs in nets.items():
        groups: dict[str, list[OpRecord]] = defaultdict(list)
        for r in recs:
            if r.gemm and r.flops < RIDGE * r.fused_bytes:
                groups[signature(r)].append(r)
        ranked = sorted(groups.items(), key=lambda kv: -sum(r.fused_s for r in kv[1]))
        for sig, rs in ranked[:top]:
            fl, by = sum(r.flops for r in rs), sum(r.fused_bytes for r in rs)
            rows.append([net, sig, str(len(rs)), f"{fl / 1e12:.3f}", f"{fl / by:.0f}"])
            rows[-1].append(_ms(sum(r.fused_s for r in rs)))
        g = gemm_intensity(recs)
        rows.append(
            [net, f"**all below the ridge: {g['below_flops_share']:.1%} of the GEMM FLOPs**"]
            + [str(sum(len(v) for v in groups.values())), "-", "-", _ms(g["below_s"])]
        )
    return headers, rows
