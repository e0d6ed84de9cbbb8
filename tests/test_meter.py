"""LinkMeter: bytes billed once per physical link and hop, by every transport and backend."""

from __future__ import annotations

import torch

from parsefl.runtime.meter import LinkMeter, path_links, payload_bytes
from parsefl.runtime.transport import InMemoryTransport, Message


def test_path_links_are_undirected_hops():
    assert path_links((3, 1, 2)) == [(1, 3), (1, 2)]
    assert path_links((5,)) == []


def test_payload_bytes_is_numel_times_element_size():
    body = {"w": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.float64)}
    assert payload_bytes(body) == 2 * 3 * 4 + 4 * 8


def test_relayed_payload_is_billed_on_every_hop_once():
    meter = LinkMeter()
    meter.record((0, 1, 2), 10)  # relayed through 1
    meter.record((2, 1), 7)
    assert meter.peek() == {(0, 1): 10, (1, 2): 17}
    assert meter.take() == {(0, 1): 10, (1, 2): 17}
    assert meter.take() == {}  # take resets


def test_control_messages_are_not_billed():
    meter = LinkMeter()
    assert meter.record_message(Message(0, 1, "caps", [], (0, 1))) == 0
    body = {"w": torch.ones(3)}
    assert meter.record_message(Message(0, 2, "params", body, (0, 1, 2), "c")) == 12
    assert meter.take() == {(0, 1): 12, (1, 2): 12}


def test_add_replays_a_cached_round():
    meter = LinkMeter()
    meter.record((0, 1), 4)
    meter.add({(0, 1): 6, (2, 3): 1})
    assert meter.take() == {(0, 1): 10, (2, 3): 1}


def test_in_memory_transport_reports_to_its_meter_and_delivers_without_copying():
    transport = InMemoryTransport()
    body = {"w": torch.ones(2)}
    inbox = transport.exchange([Message(0, 2, "params", body, (0, 1, 2), "c"),
                                Message(2, 0, "degree", {"c": 1}, (2, 1, 0))])
    assert inbox[2][0].body["w"] is body["w"]  # handed over, not copied
    assert transport.link_bytes == {(0, 1): 8, (1, 2): 8}
    assert transport.take_link_bytes() == {(0, 1): 8, (1, 2): 8}
    assert transport.meter.take() == {}
