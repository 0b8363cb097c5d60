"""PNG encoding of a 4096² output: zlib level 1 with the default strategy against the run-length strategy (issue #11).

``srkit.image_io`` writes 8-bit PNGs through Pillow and 16-bit ones through OpenCV, both at zlib level 1; this script
times each encoder with zlib's default strategy and with ``Z_RLE`` (``srkit.image_io.PNG_OPTIONS``) on two kinds of
image and checks every file decodes to the same pixels:

- ``photo-like``: 1/f noise per channel (the amplitude spectrum of natural photographs), the slope given;
- ``upscale-like``: what ``benchmarks/folder_io.py`` writes (bicubic x16 of random pixels plus fine texture).

    python benchmarks/png_encode.py                      # 4096², about half a minute on one core
    python benchmarks/png_encode.py --smoke --no-write   # tests: 64²
"""

from __future__ import annotations

import argparse
import io
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import add_output_arguments, environment, publish, results_section
from PIL import Image
from roofline import commit

Encoder = Callable[[np.ndarray, bool], bytes]  # (H x W x 3 array, run-length strategy?) -> PNG bytes


def photo_like(side: int, slope: float, seed: int = 0) -> np.ndarray:
    """``side``² RGB uint8 with a 1/f^slope amplitude spectrum per channel (mean 0.5, std 0.18 before clipping)."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(side)[:, None], np.fft.rfftfreq(side)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    planes = []
    for _ in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**slope
        plane = np.fft.irfft2(spec, s=(side, side))
        planes.append(0.5 + 0.18 * (plane - plane.mean()) / plane.std())
    return (np.clip(np.stack(planes, -1), 0, 1) * 255).round().astype(np.uint8)


def upscale_like(side: int, seed: int = 0) -> np.ndarray:
    """``side``² RGB uint8: bicubic x16 of random pixels plus fine Gaussian texture (as folder_io's outputs)."""
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, side // 16), max(2, side // 16), generator=gen)
    up = F.interpolate(small, size=(side, side), mode="bicubic", align_corners=False)
    up = (up + 0.01 * torch.randn(up.shape, generator=gen)).clamp(0, 1)
    return (up[0] * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def pillow_8bit(a: np.ndarray, rle: bool) -> bytes:
    buf = io.BytesIO()
    options = {"compress_level": 1, **({"compress_type": zlib.Z_RLE} if rle else {})}
    Image.fromarray(a).save(buf, format="PNG", **options)
    return buf.getvalue()


def opencv_16bit(a: np.ndarray, rle: bool) -> bytes:
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if rle:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a[..., ::-1]), params)
    if not ok:
        raise RuntimeError("OpenCV could not encode the 16-bit PNG")
    return buf.tobytes()


def decode(data: bytes, bits: int) -> np.ndarray:
    if bits == 8:
        return np.array(Image.open(io.BytesIO(data)))
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]


def encoders() -> list[tuple[str, int, Encoder]]:
    out: list[tuple[str, int, Encoder]] = [("Pillow 8-bit", 8, pillow_8bit)]
    try:
        import cv2  # noqa: F401  (16-bit PNGs need OpenCV, an optional dependency)
    except ImportError:
        return out
    return [*out, ("OpenCV 16-bit", 16, opencv_16bit)]


def run(side: int, repeats: int) -> list[dict[str, Any]]:
    images = {
        "photo-like 1/f": photo_like(side, 1.0),
        "photo-like 1/f^1.5": photo_like(side, 1.5, seed=1),
        "upscale-like": upscale_like(side),
    }
    rng = np.random.default_rng(2)
    rows = []
    for image_name, a8 in images.items():
        # 16-bit: the 8-bit levels widened, plus the low byte a 16-bit upscale would carry
        a16 = a8.astype(np.uint16) * 257 + rng.integers(0, 257, a8.shape).astype(np.uint16)
        for enc_name, bits, enc in encoders():
            a = a8 if bits == 8 else a16
            for rle in (False, True):
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    data = enc(a, rle)
                    times.append(time.perf_counter() - t0)
                if not np.array_equal(decode(data, bits), a):
                    raise AssertionError(f"{enc_name} ({'RLE' if rle else 'default'}) is not lossless")
                rows.append(
                    {
                        "image": image_name,
                        "encoder": enc_name,
                        "strategy": "Z_RLE" if rle else "default",
                        "s": min(times),
                        "mib": len(data) / 2**20,
                    }
                )
                print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=2, help="encodes per case; the fastest is reported")
    p.add_argument("--smoke", action="store_true", help="64², one repeat (tests)")
    add_output_arguments(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.side, args.repeats = 64, 1
    rows = run(args.side, args.repeats)
    base = {(r["image"], r["encoder"]): r for r in rows if r["strategy"] == "default"}
    table = [
        [
            r["image"],
            r["encoder"],
            r["strategy"],
            f"{r['s']:.2f}",
            f"{r['mib']:.1f}",
            f"{base[(r['image'], r['encoder'])]['s'] / r['s']:.2f}x",
        ]
        for r in rows
    ]
    env = environment(torch.device("cpu"))
    text = results_section(
        "PNG encoding, zlib level 1: default vs run-length strategy (issue #11): benchmarks/png_encode.py "
        f"({env['date']}, commit {args.commit or commit()})",
        [
            f"Machine: {env['device']}; Pillow {Image.__version__}; one {args.side}² RGB image per row, encoded in "
            f"memory, fastest of {args.repeats}; every file decodes to the same pixels (checked)",
            "speed = default strategy's time / this row's, same image and encoder",
        ],
        ["image", "encoder", "strategy", "s", "MiB", "speed"],
        table,
    )
    publish(text, rows, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "rows": rows}


if __name__ == "__main__":
    main()
