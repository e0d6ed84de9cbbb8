"""One run: build it, drive its rounds, record, checkpoint and report it (the simulator's and every
worker's lifecycle)."""
