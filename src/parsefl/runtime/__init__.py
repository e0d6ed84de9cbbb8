"""The round loop, its transports and the capability handshake."""

from parsefl.runtime.agent import Agent
from parsefl.runtime.evaluate import Evaluation, evaluate
from parsefl.runtime.loop import RoundLoop, RoundStats
from parsefl.runtime.transport import InMemoryTransport, Message, Transport

__all__ = [
    "Agent", "Evaluation", "InMemoryTransport", "Message", "RoundLoop", "RoundStats",
    "Transport", "evaluate",
]
