"""The result of a bivariate partial information decomposition (PID)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PID:
    """Bivariate PID of I(X1, X2; Y) into four non-negative atoms, all in bits.

    ``redundancy + unique1 + unique2 + synergy == total`` and ``total = I(X1, X2; Y)``;
    ``redundancy + unique1 = I(X1; Y)`` and ``redundancy + unique2 = I(X2; Y)``.

    Attributes:
        redundancy: R, information about Y that both sources carry.
        unique1: U1, information only X1 carries.
        unique2: U2, information only X2 carries.
        synergy: S, information only the pair (X1, X2) carries.
        total: I(X1, X2; Y).
    """

    redundancy: float
    unique1: float
    unique2: float
    synergy: float
    total: float

    @classmethod
    def from_redundancy(cls, redundancy: float, i1: float, i2: float, i12: float) -> PID:
        """The PID fixed by a redundancy value and the three mutual informations.

        In the bivariate case one atom determines the rest: U_i = I(X_i; Y) - R and
        S = I(X1, X2; Y) - I(X1; Y) - I(X2; Y) + R. ``redundancy`` is first clipped into
        ``[max(0, i1 + i2 - i12), min(i1, i2)]``, the interval where every atom is >= 0, which
        removes a solver's round-off without breaking the sums.

        Args:
            redundancy: R in bits.
            i1: I(X1; Y) in bits.
            i2: I(X2; Y) in bits.
            i12: I(X1, X2; Y) in bits.
        """
        low = max(0.0, i1 + i2 - i12)
        high = max(low, min(i1, i2))
        r = float(min(max(redundancy, low), high))
        return cls(
            redundancy=r,
            unique1=float(i1 - r),
            unique2=float(i2 - r),
            synergy=float(i12 - i1 - i2 + r),
            total=float(i12),
        )

    def as_tuple(self) -> tuple[float, float, float, float]:
        """``(redundancy, unique1, unique2, synergy)``."""
        return (self.redundancy, self.unique1, self.unique2, self.synergy)

    def as_dict(self, names: tuple[str, str] = ("a", "b")) -> dict[str, object]:
        """JSON-ready form ``{"redundancy": R, "unique": {a: U1, b: U2}, "synergy": S}``.

        Args:
            names: Names of the two sources (e.g. modality names), in (X1, X2) order.
        """
        first, second = names
        return {
            "redundancy": self.redundancy,
            "unique": {first: self.unique1, second: self.unique2},
            "synergy": self.synergy,
        }
