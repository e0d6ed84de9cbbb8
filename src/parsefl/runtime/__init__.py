"""The round engine and its contracts, its transports, the link meter and the capability
handshake."""

from parsefl.runtime.agent import Agent
from parsefl.runtime.engine import RoundEngine
from parsefl.runtime.evaluate import Evaluation, Slot, evaluate, slots_of
from parsefl.runtime.meter import LinkMeter
from parsefl.runtime.protocols import Engine, Executor, RoundStats
from parsefl.runtime.transport import InMemoryTransport, Message, Transport

__all__ = [
    "Agent", "Engine", "Evaluation", "Executor", "InMemoryTransport", "LinkMeter", "Message",
    "RoundEngine", "RoundStats", "Slot", "Transport", "evaluate",
    "slots_of",
]
