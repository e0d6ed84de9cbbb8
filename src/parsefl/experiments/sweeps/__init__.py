"""Many runs: sweeps and comparisons over methods, seeds and settings, and their summary tables."""
