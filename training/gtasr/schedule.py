"""GTASR forward process and discrete schedules (pure functions; docs/gtasr.md §3, §6).

Forward process (ResShift-style residual shifting in pixel space, shift and noise on one schedule):

    x_t = x0 + s_t (y - x0) + s_t eps,   eps ~ N(0, I)

with x0 the HR ground truth, y the bicubic-upsampled LR, both in [-1, 1]. The schedule is the power law
s_i = (i / (N - 1))^p on N points (s_0 = 0, s_{N-1} = 1). Stage I uses p = 2.5 and a step count that
decreases linearly from 4 to 3 intervals over training; stage II uses p = 1 on 4 points.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "ct_index_bound",
    "dtm_index_range",
    "num_points_decreasing",
    "power_schedule",
    "q_sample",
    "ta_levels",
    "ta_reconstruction_weights",
]


def power_schedule(
    num_points: int, power: float, s_min: float = 0.0, s_max: float = 1.0, rho: float = 1.0
) -> Tensor:
    """Discrete levels s_0 < ... < s_{N-1}, float64 [N] (docs/gtasr.md §3, released ``karras_schedule_new``).

    u_i = (i / (N-1))^p (already min-max normalised to [0, 1]); then Karras' rho interpolation
    s_i = (s_min^(1/rho) + u_i (s_max^(1/rho) - s_min^(1/rho)))^rho. With the released s_min = 0,
    s_max = 1, rho = 1 this is s_i = (i / (N-1))^p.
    """
    if num_points < 2:
        raise ValueError(f"num_points={num_points} must be >= 2 (the schedule needs s=0 and s=s_max)")
    if power <= 0 or rho <= 0:
        raise ValueError(f"power={power} and rho={rho} must be > 0 (released: power 2.5 / 1.0, rho 1)")
    if not 0.0 <= s_min < s_max:
        raise ValueError(f"need 0 <= s_min < s_max, got s_min={s_min}, s_max={s_max} (released 0, 1)")
    u = (torch.arange(num_points, dtype=torch.float64) / (num_points - 1)) ** power
    lo, hi = s_min ** (1.0 / rho), s_max ** (1.0 / rho)
    return (lo + u * (hi - lo)) ** rho


def num_points_decreasing(step: int, total_steps: int, start_intervals: int, end_intervals: int) -> int:
    """Points N of the stage-I schedule at 1-based training ``step`` (released
    ``improved_timesteps_schedule_decrease_linear``).

    Training is cut into (start - end + 1) equal phases of floor(total / (start - end + 1)) steps; the
    interval count starts at ``start_intervals`` and drops by one per phase, never below
    ``end_intervals``. Released (500k steps, 4 -> 3): N = 5 for step < 250,000 and N = 4 from 250,000 on.
    """
    if start_intervals < end_intervals or end_intervals < 1:
        raise ValueError(
            f"need start_intervals >= end_intervals >= 1, got {start_intervals} -> "
            f"{end_intervals} (released 4 -> 3; use equal values for a fixed count)"
        )
    if total_steps < 1 or step < 0:
        raise ValueError(f"need total_steps >= 1 and step >= 0, got step={step}, total_steps={total_steps}")
    if start_intervals == end_intervals:
        return start_intervals + 1
    phase = max(1, total_steps // (start_intervals - end_intervals + 1))
    return max(start_intervals - step // phase, end_intervals) + 1


def q_sample(x0: Tensor, y: Tensor, s: Tensor | float, noise: Tensor) -> Tensor:
    """x_s = x0 + s (y - x0) + s eps (docs/gtasr.md §3). x0, y, noise [B, C, H, W]; s a float, [B] or [B,1,1,1]."""
    if isinstance(s, Tensor) and s.ndim == 1:
        s = s.reshape(-1, *([1] * (x0.ndim - 1)))
    return x0 + s * (y - x0) + s * noise


def ct_index_bound(num_points: int, cap: int | None = None) -> int:
    """Exclusive upper bound of the CT start index n (pairs (n, n+1)); n ~ U{0, ..., bound-1}.

    Released: N - 1 in stage I, min(3, N - 1) in stage II (the same for N = 4).
    """
    bound = num_points - 1 if cap is None else min(cap, num_points - 1)
    if bound < 1:
        raise ValueError(f"no CT pair on a {num_points}-point schedule with cap={cap}")
    return bound


def dtm_index_range(num_points: int, t_min: float, t_max: float) -> tuple[int, int]:
    """[low, high) of the stage-II DTM level index t (released integer arithmetic, docs/gtasr.md §6).

    low = max(1, int(t_min N)), high = min(N, int(t_max N)); released N = 4, t in [0.1, 0.5] -> [1, 2),
    so t = 1 always (s_1 = 1/3).
    """
    low, high = max(1, int(t_min * num_points)), min(num_points, int(t_max * num_points))
    if low >= high:
        raise ValueError(
            f"t_min={t_min}, t_max={t_max} on {num_points} points leave no DTM level "
            f"([{low}, {high}) is empty); widen the range (released 0.1, 0.5 on 4 points)"
        )
    return low, high


def ta_levels(num_points: int) -> range:
    """Interior levels t = 1 .. N-2 used by Trajectory Alignment ("full-path projection", docs/gtasr.md §5)."""
    return range(1, num_points - 1)


def ta_reconstruction_weights(schedule: Tensor) -> Tensor:
    """Weights (1 - s_t) of the interior levels: TA's pixel term equals a reconstruction loss on x^0 with
    these weights, since z_t - x_t = (1 - s_t)(x^0 - x0) (docs/gtasr.md §5). Released N = 5: {0.969, 0.823, 0.513}.
    """
    interior = schedule[1:-1]
    return 1.0 - interior
