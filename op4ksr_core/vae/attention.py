"""Single-head attention with a wide head (the F16 VAE mid block: d = 512) as chunked matrix products.

No fused SDPA kernel takes d > 256 (flash and cuDNN stop at 256), so SDPA falls back to its generic
memory-efficient kernel. Two GEMMs per query chunk with float32 scores and a float32 softmax are exact to
the rounding of the bf16 probabilities before the second GEMM (the flash kernels round them the same way),
and run on the tensor cores. Memory: one [B, chunk, N] float32 score block (4096 x 65,536 x 4 B = 1 GiB at
a 4096² image).
"""

from __future__ import annotations

import torch

from ...srkit.tf32 import tf32_matmul

__all__ = ["GEMM_QUERY_CHUNK", "gemm_single_head_attention"]

# Queries per GEMM chunk. 4096 keeps the fp32 score block at 1 GiB for 65,536 keys.
GEMM_QUERY_CHUNK = 4096


def _scores(q: torch.Tensor, kt: torch.Tensor, scale: float) -> torch.Tensor:
    """q kᵀ · scale in float32: [B, n, d] x [B, d, N] -> [B, n, N]."""
    if q.dtype in (torch.bfloat16, torch.float16) and q.is_cuda:
        # bf16 values are exact in tf32 (8 significant bits < 11), so a tf32 product with fp32
        # accumulation loses nothing against an fp32 GEMM of the same bf16 inputs.
        with tf32_matmul():
            return torch.baddbmm(
                q.new_empty((), dtype=torch.float32), q.float(), kt.float(), beta=0.0, alpha=scale
            )
    return torch.bmm(q.float(), kt.float()).mul_(scale)


def gemm_single_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, query_chunk: int = GEMM_QUERY_CHUNK
) -> torch.Tensor:
    """softmax(q kᵀ / √d) v for one head. q, k, v: [B, N, d] -> [B, N, d] (v's dtype).

    Scores and softmax in float32; probabilities cast to v's dtype for the second GEMM (fp32 accumulate).
    """
    if query_chunk < 1:
        raise ValueError(f"query_chunk={query_chunk}: must be >= 1")
    scale = q.shape[-1] ** -0.5
    kt = k.transpose(1, 2)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        # Training (e.g. the F16 decoder trainer, L_AP through the decoder): autograd cannot record bmm(out=),
        # so the chunks are concatenated instead (one extra output-sized copy).
        chunks = [
            torch.bmm(torch.softmax(_scores(q[:, s : s + query_chunk], kt, scale), dim=-1).to(v.dtype), v)
            for s in range(0, q.shape[1], query_chunk)
        ]
        return torch.cat(chunks, dim=1)
    out = torch.empty(v.shape[0], q.shape[1], v.shape[-1], device=v.device, dtype=v.dtype)
    for start in range(0, q.shape[1], query_chunk):
        probs = torch.softmax(_scores(q[:, start : start + query_chunk], kt, scale), dim=-1)
        torch.bmm(probs.to(v.dtype), v, out=out[:, start : start + query_chunk])
        del probs
    return out
