"""Exact bivariate BROJA by its dual geometric program, solved with a barrier Newton method.

BROJA (Bertschinger, Rauh, Olbrich, Jost, Ay 2014) needs

    I* = min_q I_q(X1, X2; Y)  over q with q(x1, y) = p(x1, y) and q(x2, y) = p(x2, y),

after which U1 = I* - I(X2; Y), U2 = I* - I(X1; Y), R = I(X1; Y) + I(X2; Y) - I* and
S = I(X1, X2; Y) - I*. Since q(y) = p(y) is fixed, I* = H(Y) + min_q F(q) with
F(q) = sum q log q(y | x1, x2), a convex function. Its Lagrange dual is a geometric program:

    max  sum_{x1,y} lam[x1,y] p(x1,y) + sum_{x2,y} mu[x2,y] p(x2,y)
    s.t. log sum_y exp(lam[x1,y] + mu[x2,y]) <= 0   for every pair (x1, x2),

where the sum runs over the y with p(x1, y) > 0 and p(x2, y) > 0 (the only cells q may use).
We follow its central path (weighted log barrier, damped Newton on the (|X1| + |X2|) |Y|
dual variables), read the primal q off the barrier multipliers, make it exactly feasible
with a few Sinkhorn sweeps, and return I_q of that feasible q together with the certified
gap I_q - (dual bound). Weak duality (Gibbs' inequality) makes the gap an upper bound on the
error. dit's general solvers take minutes on a 12 x 11 x 10 table; this takes ~0.1 s.

Accuracy: on 1500 random count tables (up to 16 x 16 x 10, n up to 3e6) every gap was below
1e-6 bits (almost all below 1e-9). Tables whose probabilities span ~14 orders of magnitude
(e.g. Dirichlet(0.01) draws) can end with gaps up to ~0.1 bits; the caller is told the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from parsefl.pid.info import entropy, mutual_information

_GAP_NATS = 1e-9  # the central point at t is at most 1 / t nats from the optimum
_T_FACTOR = 20.0
_NEWTON_TOL = 1e-12
_MAX_NEWTON = 100
_SINKHORN_SWEEPS = 200
_PASSES = 3
_DONE_BITS = 1e-8  # certified gap at which no further pass is run
_WEIGHT_FLOOR = 1e-12


@dataclass(frozen=True)
class _Problem:
    """Index structure of the dual program of one joint table ``p[x1, x2, y]``.

    Each *cell* is an allowed (x1, x2, y); cells are grouped by their pair (x1, x2), one
    log-sum-exp constraint per pair. ``lam``/``mu`` give each cell's dual variable indices
    (``mu == -1``: that variable is pinned to 0, removing the per-y gauge freedom).
    """

    cells: tuple[np.ndarray, np.ndarray, np.ndarray]
    pair: np.ndarray
    starts: np.ndarray
    lam: np.ndarray
    mu: np.ndarray
    b: np.ndarray
    n_lam: int
    weight: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.starts)


def _problem(p: np.ndarray) -> _Problem:
    """The dual program's index structure and objective vector for ``p``."""
    n_x2, n_y = p.shape[1], p.shape[2]
    r1, r2 = p.sum(axis=1), p.sum(axis=0)
    x1, x2, y = np.nonzero((r1[:, None, :] > 0) & (r2[None, :, :] > 0))  # sorted by pair
    new_pair = np.r_[True, (x1 * n_x2 + x2)[1:] != (x1 * n_x2 + x2)[:-1]]
    lam_id = np.full(r1.shape, -1)
    lam_id[r1 > 0] = np.arange(np.count_nonzero(r1 > 0))
    mu_free = r2 > 0
    mu_free[np.argmax(r2 > 0, axis=0), np.arange(n_y)] = False  # pin one mu per y
    mu_id = np.full(r2.shape, -1)
    n_lam = np.count_nonzero(r1 > 0)
    mu_id[mu_free] = n_lam + np.arange(np.count_nonzero(mu_free))
    b = np.concatenate([r1[r1 > 0], r2[mu_free]])
    # Barrier weight of a pair: the most mass any feasible q can put on it.
    capacity = np.minimum(r1[x1, y], r2[x2, y])
    pair = np.cumsum(new_pair) - 1
    return _Problem(
        cells=(x1, x2, y),
        pair=pair,
        starts=np.flatnonzero(new_pair),
        lam=lam_id[x1, y],
        mu=mu_id[x2, y],
        b=b,
        n_lam=n_lam,
        weight=np.bincount(pair, capacity) / capacity.sum(),
    )


def _lse(pr: _Problem, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair g = log-sum-exp of its cells' z = lam + mu, and each cell's softmax weight."""
    z = v[pr.lam] + np.where(pr.mu >= 0, v[np.maximum(pr.mu, 0)], 0.0)
    top = np.maximum.reduceat(z, pr.starts)
    e = np.exp(z - top[pr.pair])
    total = np.add.reduceat(e, pr.starts)
    return top + np.log(total), e / total[pr.pair]


def _barrier_change(
    pr: _Problem, g: np.ndarray, trial: np.ndarray, linear_change: float, t: float
) -> tuple[float, np.ndarray]:
    """psi_t(trial) - psi_t(v) for the barrier psi_t(v) = -t b.v - sum_k w_k log(-g_k(v)).

    Taking the difference term by term (``linear_change`` = b.(trial - v), then log ratios
    of g) avoids the cancellation of two large barrier values once t is large. Returns +inf
    outside the dual feasible set, and the trial point's g.
    """
    g_trial, _ = _lse(pr, trial)
    if np.any(g_trial >= 0):
        return math.inf, g_trial
    return float(-t * linear_change - pr.weight @ np.log(g_trial / g)), g_trial


def _gradient_hessian(pr: _Problem, v: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of the barrier psi_t (see ``_barrier_change``) at ``v``."""
    g, pi = _lse(pr, v)
    n, has_mu = len(v), pr.mu >= 0
    lam, mu = pr.lam, pr.mu[has_mu]
    w = -pr.weight[pr.pair] * pi / g[pr.pair]  # d(-w log(-g))/dz = its z-Hessian's diagonal
    grad = -t * pr.b + np.bincount(lam, w, n) + np.bincount(mu, w[has_mu], n)
    rows = np.concatenate([lam, mu, lam[has_mu], mu])
    cols = np.concatenate([lam, mu, mu, lam[has_mu]])
    vals = np.concatenate([w, w[has_mu], w[has_mu], w[has_mu]])
    hess = np.bincount(rows * n + cols, vals, n * n).reshape(n, n)
    # Row k of `spread`: how pair k's softmax weights fall on the variables.
    spread_at = np.concatenate([pr.pair * n + lam, pr.pair[has_mu] * n + mu])
    spread_vals = np.concatenate([pi, pi[has_mu]])
    spread = np.bincount(spread_at, spread_vals, pr.n_pairs * n).reshape(pr.n_pairs, n)
    hess += (spread.T * (pr.weight * (1.0 / g + 1.0 / g**2))) @ spread
    return grad, hess


def _newton_step(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """-hess^-1 grad, solved on the Jacobi-equilibrated system (variables of rare values
    have curvature many orders of magnitude below the others)."""
    scale = 1.0 / np.sqrt(np.maximum(np.diag(hess), np.finfo(float).tiny))
    scaled = hess * scale[:, None] * scale[None, :]
    try:
        return -scale * np.linalg.solve(scaled, scale * grad)
    except np.linalg.LinAlgError:
        return -scale * np.linalg.lstsq(scaled, scale * grad, rcond=None)[0]


def _newton(pr: _Problem, v: np.ndarray, t: float) -> tuple[np.ndarray, bool]:
    """Minimize the barrier at ``t`` from the strictly feasible ``v`` (damped Newton).

    Returns the last iterate (always strictly feasible) and whether it is centered, i.e.
    whether the Newton decrement fell below tolerance before numerics gave out.
    """
    g, _ = _lse(pr, v)
    for _ in range(_MAX_NEWTON):
        grad, hess = _gradient_hessian(pr, v, t)
        step = _newton_step(hess, grad)
        decrement = float(-grad @ step)
        if not decrement >= 0:  # the Hessian solve lost all precision
            return v, False
        if decrement / 2 <= _NEWTON_TOL:
            return v, True
        size, linear = 1.0, float(pr.b @ step)
        while size > 1e-12:
            change, g_trial = _barrier_change(pr, g, v + size * step, size * linear, t)
            if change <= -0.25 * size * decrement:
                v, g = v + size * step, g_trial
                break
            size *= 0.5
        else:
            return v, False  # no progress possible at this precision
    return v, False


def _primal(pr: _Problem, v: np.ndarray, t: float, p: np.ndarray) -> np.ndarray:
    """Primal q from the barrier multipliers, made exactly feasible by Sinkhorn sweeps."""
    g, pi = _lse(pr, v)
    q = np.zeros(p.shape)
    q[pr.cells] = pr.weight[pr.pair] * pi / (t * -g[pr.pair])
    r1, r2 = p.sum(axis=1), p.sum(axis=0)
    for _ in range(_SINKHORN_SWEEPS):
        m1 = q.sum(axis=1)
        q *= np.divide(r1, m1, out=np.zeros_like(m1), where=m1 > 0)[:, None, :]
        m2 = q.sum(axis=0)
        q *= np.divide(r2, m2, out=np.zeros_like(m2), where=m2 > 0)[None, :, :]
        if np.abs(q.sum(axis=1) - r1).max() < 1e-15:
            break
    return q


def _central_path(
    pr: _Problem, v: np.ndarray
) -> tuple[np.ndarray, float, list[tuple[np.ndarray, float]]]:
    """Follow the barrier's central path from t = 1 until 1 / t < _GAP_NATS.

    Returns the last iterate, the best dual value b.v seen (any strictly feasible v bounds
    min F from below), and the points to read a primal from: the last centered one and the
    last iterate.
    """
    t, dual = 1.0, -math.inf
    candidates: list[tuple[np.ndarray, float]] = []
    while True:
        v, centered = _newton(pr, v, t)
        dual = max(dual, float(pr.b @ v))
        if centered:
            candidates = [(v, t)]
        if 1.0 / t < _GAP_NATS:  # the barrier weights sum to 1
            break
        t *= _T_FACTOR
    return v, dual, [*candidates, (v, t)]


def _reweighted(pr: _Problem, q: np.ndarray) -> _Problem:
    """The problem with barrier weights proportional to the pair masses of ``q``."""
    mass = np.bincount(pr.pair, q[pr.cells], minlength=pr.n_pairs)
    weight = np.maximum(mass, _WEIGHT_FLOOR * mass.max())
    return replace(pr, weight=weight / weight.sum())


def broja_min_information(p: np.ndarray) -> tuple[float, float]:
    """min_q I_q(X1, X2; Y) in bits over BROJA's feasible set, and its certified error bound.

    Up to ``_PASSES`` passes along the central path; after each, the barrier weights are
    reset to the pair masses of its last centered primal, which evens out the constraint
    slacks whose spread limits double precision on skewed tables.

    Args:
        p: Joint probability table ``p[x1, x2, y]`` with every marginal value > 0.

    Returns:
        ``(I*, gap)``: I_q of an exactly feasible q (an upper bound on the minimum) and
        ``gap`` = I* - (dual lower bound), both in bits.
    """
    pr = _problem(p)
    v = np.zeros(len(pr.b))
    v[: pr.n_lam] = -(math.log(p.shape[2]) + 1.0)  # every constraint slack: g <= -1
    n1, n2, n_y = p.shape
    upper, lower = math.inf, -math.inf
    with threadpool_limits(limits=1):  # small dense solves: threads only add overhead
        for _ in range(_PASSES):
            v, dual, candidates = _central_path(pr, v)
            lower = max(lower, entropy(p.sum(axis=(0, 1))) + dual / math.log(2))
            primals = [_primal(pr, *point, p) for point in candidates]
            for q in primals:
                upper = min(upper, mutual_information(q.reshape(n1 * n2, n_y)))
            if upper - lower <= _DONE_BITS:
                break
            pr, v = _reweighted(pr, primals[0]), candidates[0][0]
    return upper, max(0.0, upper - lower)
