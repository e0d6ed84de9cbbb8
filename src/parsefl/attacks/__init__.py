"""Attacks (registry ``ATTACKS``, ``adversary.attack``) and the adversary that applies them in
the engine's send path. Each attack is documented with its source."""

from parsefl.attacks import omniscient, simple  # noqa: F401  (fill the registry)
from parsefl.attacks.base import Adversary, Attack, AttackInput, build_attack

__all__ = ["Adversary", "Attack", "AttackInput", "build_attack"]
