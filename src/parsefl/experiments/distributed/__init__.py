"""Runs over several processes: the worker, the launcher, the transports' construction, placement,
and merging the ranks' records."""
