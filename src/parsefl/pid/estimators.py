"""Registered redundancy estimators: ``broja`` (exact), ``broja_dit`` and ``mmi``.

An estimator is ``fn(p, seed) -> R``: it takes the joint probability table ``p[x1, x2, y]``
(every axis of size >= 2, every marginal value > 0) and returns the redundancy R in bits.
In the bivariate case R fixes the other atoms (``PID.from_redundancy``).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from parsefl.errors import ConfigError, ParseflError
from parsefl.pid.broja import broja_min_information
from parsefl.pid.info import pid_informations
from parsefl.pid.registry import PID_ESTIMATORS

GAP_WARN_BITS = 1e-6
"""``broja`` warns when its certified optimality gap exceeds this."""


@PID_ESTIMATORS.register("broja")
def broja(p: np.ndarray, seed: int = 0) -> float:
    """BROJA PID (Bertschinger et al. 2014), exact: dual geometric program, certified gap.

    R = I(X1; Y) + I(X2; Y) - min_q I_q(X1, X2; Y) over q matching p(x1, y) and p(x2, y);
    see ``parsefl.pid.broja``. Deterministic; fast up to a few hundred dual variables.

    Args:
        p: Joint probability table ``p[x1, x2, y]``.
        seed: Unused (the solver is deterministic); kept for the estimator signature.
    """
    del seed
    i1, i2, _ = pid_informations(p)
    minimum, gap = broja_min_information(p)
    if gap > GAP_WARN_BITS:
        warnings.warn(
            f"BROJA solver stopped {gap:.2g} bits from the optimum", RuntimeWarning, stacklevel=2
        )
    return i1 + i2 - minimum


def _dit_distribution(p: np.ndarray) -> object:
    """A dit Distribution over outcomes ``(x1, x2, y)`` of the non-zero cells of ``p``."""
    try:
        import dit  # deferred: importing dit takes about a second
    except ImportError:
        raise ConfigError("estimator", "broja_dit needs the dit package: "
                          "pip install 'parsefl[dit]'") from None

    cells = np.argwhere(p > 0)
    outcomes = [tuple(int(v) for v in cell) for cell in cells]
    pmf = p[tuple(cells.T)]
    return dit.Distribution(outcomes, pmf / pmf.sum())


@PID_ESTIMATORS.register("broja_dit")
def broja_dit(p: np.ndarray, seed: int = 0) -> float:
    """BROJA PID computed by dit's solvers (reference; slow on large tables).

    dit picks SLSQP with basin hopping below 64 cells and alternating divergence
    minimisation (admUI) from 125, falling back between them. Exact on small tables; on
    larger ones it may stop ~1e-3 bits short of the optimum and takes seconds to minutes.

    Args:
        p: Joint probability table ``p[x1, x2, y]``.
        seed: Seeds dit's random restarts, for reproducible results.

    Returns:
        I(X1; Y) - U1 averaged with I(X2; Y) - U2 (equal up to solver round-off).
    """
    from dit.pid import PID_BROJA

    i1, i2, _ = pid_informations(p)
    # dit logs its solver fall-backs at WARNING; they are internal, keep them off the console.
    logger = logging.getLogger("dit")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        result = PID_BROJA(
            _dit_distribution(p), sources=[[0], [1]], target=[2], rng=np.random.default_rng(seed)
        )
    except Exception as exc:  # dit raises its own exception types
        raise ParseflError(f"dit's BROJA optimisation failed: {exc}") from exc
    finally:
        logger.setLevel(level)
    u1 = float(result.get_pi(((0,),)))
    u2 = float(result.get_pi(((1,),)))
    return 0.5 * ((i1 - u1) + (i2 - u2))


@PID_ESTIMATORS.register("mmi")
def mmi(p: np.ndarray, seed: int = 0) -> float:
    """Minimum mutual information: R = min(I(X1; Y), I(X2; Y)); closed form, instant.

    An upper bound on BROJA's redundancy (equal to it whenever BROJA leaves one source no
    unique information); a quick sanity check.

    Args:
        p: Joint probability table ``p[x1, x2, y]``.
        seed: Unused (the measure is deterministic); kept for the estimator signature.
    """
    del seed
    i1, i2, _ = pid_informations(p)
    return min(i1, i2)
