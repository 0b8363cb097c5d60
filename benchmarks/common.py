"""Shared helpers of the benchmark scripts: device description, timing, peak memory, matmul ceiling,
per-module stage timing and appending sections to ``benchmarks/RESULTS.md``.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only; not the CUDA context or the caching
allocator's slack), reset before each measured call. On CPU the resident set size of this process is sampled
every few milliseconds during the call (``/proc/self/statm``); the reported figure is the peak RSS reached,
and its growth over the RSS before the call. Both CPU figures include allocator caching: upper bounds.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
GIB = 2**30
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def device_name(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3 (79.1 GiB)' or 'CPU <model> (N threads, load L)'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / GIB:.1f} GiB)"
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        if cpuinfo.exists()
        else []
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # Other jobs on the machine slow CPU timings down: the load average says how much.
    return (
        f"CPU {names[0] if names else platform.processor() or 'unknown'} ({torch.get_num_threads()} torch "
        f"threads, 1-min load average {load:.1f} at the start)"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    """Current resident set size of this process (Linux), 0 where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class _RSSSampler:
    """Background thread recording the maximum RSS while active."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s, self.peak, self._stop = interval_s, rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> _RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, int]]:
    """Measure the peak memory of the enclosed block: yields a dict filled on exit with ``peak_bytes``
    (CUDA: max allocated; CPU: max RSS) and ``growth_bytes`` (over the value at entry)."""
    out: dict[str, int] = {}
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield out
        sync(device)
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device)
        out["growth_bytes"] = out["peak_bytes"] - before
        return
    before = rss_bytes()
    with _RSSSampler() as sampler:
        yield out
    out["peak_bytes"], out["growth_bytes"] = sampler.peak, sampler.peak - before


@dataclass
class Measurement:
    """Wall times of the repeats (s), their median and the peak memory of the timed repeats."""

    times: list[float]
    peak_bytes: int
    growth_bytes: int
    cpu_times: list[float] = field(default_factory=list)  # process CPU time per repeat (all threads)
    result: Any = field(default=None, repr=False)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def summary(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "times_s": self.times,
            "cpu_s": self.cpu_times,
            "peak_gib": self.peak_bytes / GIB,
            "growth_gib": self.growth_bytes / GIB,
        }


def measure(fn: Callable[[], Any], device: torch.device, *, repeats: int = 3, warmup: int = 1) -> Measurement:
    """Run ``fn`` ``warmup`` times, then time ``repeats`` calls (device-synchronised) under :func:`peak_memory`."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu, result = [], [], None
    with peak_memory(device) as mem:
        for _ in range(repeats):
            start, cpu0 = time.perf_counter(), time.process_time()
            result = fn()
            sync(device)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu0)
    return Measurement(times, mem["peak_bytes"], mem["growth_bytes"], cpu, result)


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Measured dense-matmul throughput in TFLOP/s: median over ``repeats`` of an n x n x n ``a @ b``."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    m = measure(lambda: a @ b, device, repeats=repeats, warmup=2)
    return 2 * n**3 / m.median / 1e12


class StageTimer:
    """Wall time and peak memory of each call of named modules, via forward pre/post hooks.

    Lets a benchmark run a real end-to-end function (e.g. ``headless.upscale_image``) unchanged and still
    report per-stage numbers; whatever runs outside the hooked modules is the remainder of the total.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], device: torch.device) -> None:
        self.device, self.records = device, {name: [] for name in modules}
        self._start: dict[str, tuple[float, _RSSSampler | None]] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            sync(self.device)
            sampler = None
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            else:
                sampler = _RSSSampler().__enter__()
            self._start[name] = (time.perf_counter(), sampler)

        return hook

    def _post(self, name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            sync(self.device)
            start, sampler = self._start.pop(name)
            seconds = time.perf_counter() - start
            if sampler is None:
                peak = torch.cuda.max_memory_allocated(self.device)
            else:
                sampler.__exit__(None, None, None)
                peak = sampler.peak
            self.records[name].append({"seconds": seconds, "peak_bytes": peak})

        return hook

    def clear(self) -> None:
        for r in self.records.values():
            r.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def environment(device: torch.device) -> dict[str, str]:
    """Device, torch version, CUDA version and date for a results section."""
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "-",
        "date": dt.date.today().isoformat(),
    }


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def results_section(heading: str, notes: list[str], headers: list[str], rows: list[list[str]]) -> str:
    """A RESULTS.md section: the ``## heading``, one bullet per note, then the table."""
    return "\n".join([f"## {heading}", "", *(f"- {n}" for n in notes), "", markdown_table(headers, rows)])


def append_results(text: str, path: Path = RESULTS) -> None:
    """Append a section to RESULTS.md (created with a title if missing); other sections are never touched."""
    exists = path.exists()
    with path.open("a", encoding="utf-8") as f:
        f.write(("\n" if exists else "# Benchmark results\n\n") + text.rstrip("\n") + "\n")


def add_output_arguments(parser: Any) -> None:
    """``--json``, ``--results`` (default RESULTS.md), ``--no-write`` and ``--commit``: where a benchmark's section and
    data go (see :func:`publish`) and the commit it names."""
    parser.add_argument("--json", type=Path, help="also write the measured data here (JSON)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="append the Markdown section here")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not append it")
    parser.add_argument("--commit", default=None, help="commit to report (default: git rev-parse HEAD here)")


def publish(text: str, data: Any, *, results: Path | None, no_write: bool, json_path: Path | None) -> None:
    """Print a results section, append it to ``results`` unless ``no_write``, and write ``data`` to
    ``json_path`` as JSON when one is given."""
    import json

    print(text)
    if results is not None and not no_write:
        append_results(text, results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data), encoding="utf-8")
