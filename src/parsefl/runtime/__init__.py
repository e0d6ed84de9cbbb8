"""The round loop, its transports and the capability handshake."""

from parsefl.runtime.agent import Agent
from parsefl.runtime.evaluate import Evaluation, Slot, evaluate, slots_of
from parsefl.runtime.loop import RoundLoop, RoundStats
from parsefl.runtime.transport import InMemoryTransport, Message, Transport

__all__ = [
    "Agent", "Evaluation", "InMemoryTransport", "Message", "RoundLoop", "RoundStats",
    "Slot", "Transport", "evaluate", "slots_of",
]
