"""Differential privacy (DP-SGD in every agent's local steps, accounted by Opacus) and what a
curious neighbour learns from the components it receives (membership-inference audit)."""
