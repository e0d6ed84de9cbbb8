"""Old name of the worker module, kept so that ``python -m parsefl.experiments.launch`` command
lines keep working; new ones use ``python -m parsefl.experiments.worker``."""

import sys

from parsefl.experiments.worker import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
