"""Omniscient attacks: they read the honest copies the recipient aggregates this round."""

from __future__ import annotations

import math

import torch

from parsefl.attacks.base import Attack, AttackInput, honest_stats
from parsefl.registry import ATTACKS


@ATTACKS.register("alie", "a little is enough (Baruch et al. 2019): mean - z * std")
class ALittleIsEnough(Attack):
    """Sends ``mu - z * sigma`` (coordinate-wise) over the recipient's honest copies (its own
    and its honest peers', as He et al. 2022 adapt it to gossip); Baruch, Baruch & Goldberg,
    "A little is enough" (NeurIPS 2019). ``z`` (default: per the paper) from the ``n`` copies
    the recipient aggregates and the ``m`` attackers among them: ``s = floor(n/2 + 1) - m``,
    ``z = Phi^-1((n - s) / n)`` (clamped at 0: never beyond the mean's far side).
    With fewer than two honest copies sigma is 0 (the attacker sends the honest mean)."""

    name = "alie"
    omniscient = True

    def __init__(self, z: float | None = None) -> None:
        self.z = z

    def craft(self, inp: AttackInput) -> torch.Tensor:
        mean, std, _ = honest_stats(inp)
        return mean - self.z_of(inp)[:, None].to(mean) * std

    def z_of(self, inp: AttackInput) -> torch.Tensor:
        if self.z is not None:
            return torch.full((inp.own.shape[0],), float(self.z))
        n = (inp.honest | inp.byzantine).sum(dim=1).tolist()
        m = inp.byzantine.sum(dim=1).tolist()
        return torch.tensor([alie_z(a, b) for a, b in zip(n, m, strict=True)])


def alie_z(n: int, m: int) -> float:
    """Baruch et al.'s ``z_max`` for ``n`` workers of which ``m`` are Byzantine."""
    s = math.floor(n / 2 + 1) - m
    cdf = min(max((n - s) / n, 0.5), 1 - 1e-6)
    return float(torch.special.ndtri(torch.tensor(cdf, dtype=torch.float64)))


@ATTACKS.register("ipm", "inner-product manipulation (Xie et al. 2020): -eps * honest mean")
class InnerProductManipulation(Attack):
    """Sends ``-epsilon * mean`` of the recipient's honest copies (Xie, Koyejo & Gupta, "Fall
    of empires: breaking Byzantine-tolerant SGD by inner product manipulation", UAI 2020;
    epsilon = 0.1 as in He et al. 2022's public code)."""

    name = "ipm"
    omniscient = True

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = float(epsilon)

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return -self.epsilon * honest_stats(inp)[0]


@ATTACKS.register("dissensus", "dissensus (He et al. 2022): pushes the recipient away "
                  "from its honest neighbours")
class Dissensus(Attack):
    """Sends ``x_i - epsilon * sum_{j honest} w_ij (x_j - x_i) / sum_{b Byzantine} w_ib`` to
    recipient i (He, Karimireddy & Jaggi 2022, "dissensus"): the attackers' combined weight
    cancels (epsilon = 1) or reverses (epsilon > 1) the pull of i's honest neighbours, so the
    honest agents drift apart instead of reaching consensus."""

    name = "dissensus"
    omniscient = True

    def __init__(self, epsilon: float = 1.5) -> None:
        self.epsilon = float(epsilon)

    def craft(self, inp: AttackInput) -> torch.Tensor:
        target = inp.view[:, 0]
        w = inp.weights.to(inp.view.dtype)
        honest = inp.honest.clone()
        honest[:, 0] = False
        pull = (torch.where(honest, w, torch.zeros_like(w))[..., None]
                * (inp.view - target[:, None])).sum(dim=1)
        byz_w = torch.where(inp.byzantine, w, torch.zeros_like(w)).sum(dim=1, keepdim=True)
        return target - self.epsilon * pull / byz_w.clamp_min(1e-12)
