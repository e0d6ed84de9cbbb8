"""PID-guided slice sizing: turn a PID into r:u:s weights for ``split: pid``."""

from __future__ import annotations

from parsefl.errors import ConfigError
from parsefl.pid.result import PID

_UNIQUE_MODES = ("mean", "sum")


def _water_fill(values: tuple[float, ...], floor: float) -> list[float]:
    """Normalize ``values`` to sum 1 with every share >= ``floor``.

    Shares below the floor are raised to it; the rest of the mass is shared by the others in
    proportion to their values, repeating until no share is below the floor.
    """
    fixed: set[int] = set()
    while True:
        free = [i for i in range(len(values)) if i not in fixed]
        mass = 1.0 - floor * len(fixed)
        total = sum(values[i] for i in free)
        shares = {i: (values[i] / total if total > 0 else 1.0 / len(free)) * mass for i in free}
        low = [i for i in free if shares[i] < floor]
        if not low:
            return [floor if i in fixed else shares[i] for i in range(len(values))]
        fixed.update(low)


def pid_split(pid: PID, floor: float = 0.1, unique: str = "mean") -> tuple[float, float, float]:
    """Redundant:unique:synergy slice weights in proportion to (R, U, S), summing to 1.

    Each encoder's output is split into r, u and s slices. Per encoder, the r slice should
    hold R bits, its u slice that modality's unique bits and the s slice its part of S, so by
    default U is the mean unique information (U1 + U2) / 2; ``unique="sum"`` uses U1 + U2.
    Every weight is at least ``floor`` (no slice vanishes); the rest is shared in proportion.
    An all-zero PID gives equal weights.

    Args:
        pid: The decomposition (e.g. ``parsefl.pid.pid`` on the training data).
        floor: Minimum weight of each slice, in [0, 1/3].
        unique: ``mean`` or ``sum`` of the two unique informations.

    Returns:
        ``(r, u, s)`` weights, each >= floor, summing to 1.

    Raises:
        ConfigError: ``floor`` outside [0, 1/3] or an unknown ``unique`` mode.
    """
    if not 0.0 <= floor <= 1.0 / 3.0:
        raise ConfigError("floor", f"must be in [0, 1/3] so three slices fit, got {floor!r}")
    if unique not in _UNIQUE_MODES:
        raise ConfigError(
            "unique", f"unknown {unique!r}; choose one of: {', '.join(_UNIQUE_MODES)}"
        )
    u = pid.unique1 + pid.unique2
    values = (pid.redundancy, u / 2 if unique == "mean" else u, pid.synergy)
    values = tuple(max(0.0, float(v)) for v in values)
    r, u_w, s = _water_fill(values, floor)
    return (r, u_w, s)
