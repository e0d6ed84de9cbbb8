"""Tools on top of runs: encoder pretraining, linear probes of slices, PID-guided split ratios."""
