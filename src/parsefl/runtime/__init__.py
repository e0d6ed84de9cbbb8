"""The round engine, its transports, the link meter and the capability handshake."""

from parsefl.runtime.agent import Agent
from parsefl.runtime.evaluate import Evaluation, Slot, evaluate, slots_of
from parsefl.runtime.loop import RoundEngine, RoundStats
from parsefl.runtime.meter import LinkMeter
from parsefl.runtime.transport import InMemoryTransport, Message, Transport

__all__ = [
    "Agent", "Evaluation", "InMemoryTransport", "LinkMeter", "Message", "RoundEngine",
    "RoundStats", "Slot", "Transport", "evaluate", "slots_of",
]
