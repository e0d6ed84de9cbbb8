"""The likelihood-ratio membership attack (LiRA; Carlini et al., "Membership Inference Attacks
From First Principles", IEEE S&P 2022), as ``parsefl audit --shadows K`` runs it on one view
(one victim, one attacker, one component kind) with the shadow runs of ``parsefl.privacy.
shadows``.

Statistic: the logit-scaled confidence of the true class, ``phi = log(p / (1 - p))``, computed
from the logits as ``z_y - logsumexp(z_j, j != y)`` (exact, and finite where ``p`` rounds to 1).

Per candidate sample, a Gaussian over the shadows where it is OUT (the victim did not train on
it) — its mean ``mu_out(x)``; the variance is global (pooled within samples), as the paper
recommends for fewer than about 64 shadows. Two scores, higher meaning "member":

- ``offline``: the one-sided test of the OUT Gaussian, ``log P[Z <= phi]`` with
  ``Z ~ N(mu_out(x), sigma_out^2)`` (the paper's 1 - P[Z > phi], as a log to keep its order
  where it rounds to 1);
- ``online``: the log likelihood ratio ``log N(phi; mu_in(x), sigma_in^2) - log N(phi; mu_out(x),
  sigma_out^2)``, with ``mu_in(x) = mu_out(x) + delta``: ``delta`` the mean over the members of
  their IN-minus-OUT mean shift, ``sigma_in`` pooled over their IN observations. The shift is
  global, not the paper's per-sample IN mean: non-members (test samples) are IN no shadow, and
  scoring members with their own IN mean but non-members with a pooled one would score the two
  sets with estimators of different noise, which alone moves the AUC and the low-FPR rate.

Non-members are OUT of every shadow; each uses K/2 of them (one of each complementary pair,
chosen by the caller), as many as a member has, for the same reason.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

TINY = 1e-12  # a variance floor (identical shadows)


def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``log(p_y / (1 - p_y))`` of each row's softmax, from the logits."""
    z = logits.double()
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf")).logsumexp(1)
    return (true - others).numpy()


def pooled_fit(phi: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, float]:
    """Per column of ``phi`` (K shadows x n samples), the mean over the rows ``use`` marks, and
    the variance pooled within columns (columns with no row give NaN means and no weight).
    Where no column has two rows (two shadows: one OUT each) a within-column variance cannot
    be estimated: the variance of all the marked values instead."""
    count = use.sum(0)
    mean = np.where(use, phi, 0.0).sum(0) / np.maximum(count, 1)
    mean[count == 0] = np.nan
    resid = np.where(use, phi - np.nan_to_num(mean), 0.0)
    dof = int((count[count > 0] - 1).sum())
    var = float((resid**2).sum()) / dof if dof else float(np.var(phi[use])) if use.any() else 0
    return mean, max(var, TINY)


def lira_scores(phi: np.ndarray, shadow: np.ndarray, inside: np.ndarray, outside: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Online and offline LiRA scores of ``n`` candidates: ``phi`` (n,) their statistic under
    the attacked model, ``shadow`` (K, n) under each shadow, ``inside`` / ``outside`` (K, n)
    which shadow observations count as IN / OUT of each candidate (see the module)."""
    mu_out, var_out = pooled_fit(shadow, outside)
    mu_in, var_in = pooled_fit(shadow, inside)
    both = ~np.isnan(mu_in) & ~np.isnan(mu_out)
    delta = float(np.mean(mu_in[both] - mu_out[both])) if both.any() else 0.0
    if not both.any():
        var_in = var_out
    online = (norm.logpdf(phi, mu_out + delta, np.sqrt(var_in))
              - norm.logpdf(phi, mu_out, np.sqrt(var_out)))
    offline = norm.logcdf((phi - mu_out) / np.sqrt(var_out))
    return {"online": online, "offline": offline}
