"""parsefl: multimodal decentralized federated learning with PID-guided partial alignment."""

__version__ = "0.1.0"
