"""Building runs from configs, running them, and their run folders."""
