"""DSGD-Full (zero-fill): every agent carries every encoder; missing modalities are zeros;
the whole model is gossiped among all agents (the usual FedMultimodal-style answer)."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.monolithic import MonolithicStrategy


@SHARING.register("dsgd_full", "every encoder on every agent, missing inputs zero-filled, "
                               "whole model gossiped")
class DSGDFull(MonolithicStrategy):
    name = "dsgd_full"
    zero_fill = True
