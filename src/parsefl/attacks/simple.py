"""Attacks that use only the attacker's own copy (not omniscient)."""

from __future__ import annotations

import torch

from parsefl.attacks.base import Attack, AttackInput, pair_seed
from parsefl.errors import ConfigError
from parsefl.registry import ATTACKS


@ATTACKS.register("sign_flip", "sends -x (bit/sign flipping, e.g. He et al. 2022 'BF')")
class SignFlip(Attack):
    """Sends the negated copy ``-x`` (the "bit flipping" attacker of He, Karimireddy & Jaggi
    2022, public code ``BitFlippingWorker``)."""

    name = "sign_flip"

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return -inp.own


@ATTACKS.register("scale", "sends lam * x")
class Scale(Attack):
    """Sends ``lam * x`` (model scaling / boosting, Bhagoji et al. 2019; default lam = 10)."""

    name = "scale"

    def __init__(self, lam: float = 10.0) -> None:
        self.lam = float(lam)

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return self.lam * inp.own


@ATTACKS.register("gaussian", "sends x + Gaussian noise of L2 norm `norm`")
class Gaussian(Attack):
    """Sends ``x + norm * g / ||g||``, ``g ~ N(0, I)`` over the whole component (the Gaussian
    Byzantine of Blanchard et al. 2017, with the noise's norm fixed so that it is a stated
    size); ``g`` is seeded per (round, sender, recipient, component), so every backend sends
    the same noise."""

    name = "gaussian"

    def __init__(self, norm: float = 10.0) -> None:
        if norm < 0:
            raise ConfigError("adversary.params.norm", f"expected >= 0, got {norm}")
        self.norm = float(norm)

    def craft(self, inp: AttackInput) -> torch.Tensor:
        n = inp.own.shape[1]
        noise = torch.stack([torch.randn(n, generator=torch.Generator().manual_seed(
            pair_seed(inp.seed, key)), dtype=torch.float64) for key in inp.keys])
        noise = noise / torch.linalg.vector_norm(noise, dim=1, keepdim=True).clamp_min(1e-30)
        return inp.own + self.norm * noise.to(inp.own)


@ATTACKS.register("nan", "sends NaN everywhere (a faulty or malicious node)")
class NotANumber(Attack):
    """Sends a copy full of NaN (non-finite values; the receive checks reject it)."""

    name = "nan"

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return torch.full_like(inp.own, float("nan"))


@ATTACKS.register("free_rider", "sends its initial (untrained) parameters")
class FreeRider(Attack):
    """Sends the copy it held before any training, every round (a free-rider that takes
    the others' models and contributes nothing; Lin et al. 2019, 'Free-riders in FL')."""

    name = "free_rider"

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return inp.initial.clone()


@ATTACKS.register("label_flip", "data poisoning: trains on labels C-1-y, sends honestly")
class LabelFlip(Attack):
    """Data poisoning: the attacker trains on the permuted labels ``C - 1 - y`` (the
    label-flipping worker of He et al. 2022's public code, ``9 - label`` on MNIST) and sends
    its model honestly. Applied to the training labels when the run is built, so
    ``adversary.from_round`` must be 0."""

    name = "label_flip"
    data_poisoning = True

    def craft(self, inp: AttackInput) -> torch.Tensor:
        return inp.own

    def poison_labels(self, y: torch.Tensor, n_classes: int) -> torch.Tensor:
        return n_classes - 1 - y
