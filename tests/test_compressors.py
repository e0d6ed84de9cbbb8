"""Compression operators: encode/decode on hand-computed tensors, their exact byte counts, the
seeded noise, and CHOCO-SGD error feedback carrying the residual."""

from __future__ import annotations

import pytest
import torch

from parsefl.compressors import (
    Choco,
    CodecError,
    Communication,
    Rule,
    decode_tensors,
    encode_tensors,
    encoded_spec,
    like_of,
    uniform,
)
from parsefl.compressors.int8 import Int8
from parsefl.compressors.topk import TopK
from parsefl.errors import ConfigError
from parsefl.registry import COMPRESSORS
from parsefl.runtime.meter import payload_bytes

X = {"w": torch.tensor([[0.5, -2.0], [1.0, 0.25]]), "b": torch.tensor([-0.125, 3.0, 0.0])}
KEYS = {"w": 7, "b": 11}


def _roundtrip(name: str, **params):
    comp = COMPRESSORS.create(name, params, "c", "p")
    body = encode_tensors(comp, X, KEYS)
    return body, decode_tensors(comp, body, like_of(X))


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_half_casts_are_exact_on_representable_values_and_cost_two_bytes(name):
    body, out = _roundtrip(name)
    assert set(body) == {"w#v", "b#v"}
    assert body["w#v"].dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[name]
    assert payload_bytes(body) == 2 * (4 + 3) == 14
    for n in X:  # every value above is a short binary fraction: no rounding
        assert torch.equal(out[n], X[n]) and out[n].dtype == torch.float32


def test_bf16_rounds_to_nearest_even():
    bf16 = COMPRESSORS.create("bf16", {}, "c", "p")
    body = encode_tensors(bf16, {"x": torch.tensor([1 + 2 ** -9, 1 + 3 * 2 ** -8])}, {"x": 0})
    # 7 stored mantissa bits: 1 + 2^-9 rounds down to 1, 1 + 3 * 2^-8 to even 1 + 2^-6
    assert body["x#v"].float().tolist() == [1.0, 1 + 2 ** -6]


def test_topk_keeps_the_largest_magnitudes_with_int32_indices():
    body, out = _roundtrip("topk", fraction=0.5)
    # w = [0.5, -2, 1, 0.25]: k = ceil(0.5 * 4) = 2 -> -2 (index 1) and 1 (index 2)
    assert body["w#i"].tolist() == [1, 2] and body["w#i"].dtype == torch.int32
    assert body["w#v"].tolist() == [-2.0, 1.0]
    assert torch.equal(out["w"], torch.tensor([[0.0, -2.0], [1.0, 0.0]]))
    # b = [-0.125, 3, 0]: k = ceil(1.5) = 2 -> 3 (index 1) and -0.125 (index 0)
    assert body["b#i"].tolist() == [0, 1]
    assert torch.equal(out["b"], torch.tensor([-0.125, 3.0, 0.0]))
    assert payload_bytes(body) == (2 + 2) * (4 + 4) == 32


def test_topk_count_and_fraction_bounds():
    assert TopK(0.1).k(100) == 10 and TopK(0.1).k(3) == 1 and TopK(1.0).k(7) == 7
    assert TopK(0.1).bytes((10, 100), torch.float32) == 100 * 8
    for bad in (0, -0.5, 1.5, True, "x"):
        with pytest.raises(ConfigError, match="fraction"):
            TopK(bad)


def test_int8_stochastic_rounding_by_hand():
    comp = Int8()
    x = torch.tensor([[1.27, -0.635, 0.3, 0.0]])
    keys = torch.tensor([5])
    u = uniform(keys, 4)[0]
    parts = comp.encode_rows(x, keys)
    scale = 1.27 / 127  # max |x| / 127 = 0.01
    assert float(parts["s"][0]) == pytest.approx(scale)
    v = x[0] / parts["s"][0]  # [127, -63.5, 30, 0]
    expected = torch.floor(v + u).clamp(-127, 127)
    assert parts["q"][0].tolist() == expected.to(torch.int8).tolist()
    assert parts["q"][0, 0] == 127 and parts["q"][0, 3] == 0  # exact values stay exact
    assert int(parts["q"][0, 1]) in (-64, -63) and int(parts["q"][0, 2]) == 30
    decoded = comp.decode_rows(parts, (4,), torch.float32)
    assert torch.allclose(decoded, parts["q"].float() * parts["s"][:, None])
    assert comp.bytes((4,), torch.float32) == 4 + 4


def test_int8_per_row_scales():
    comp = Int8(per_row=True)
    body = encode_tensors(comp, X, KEYS)
    # w: one scale per row (max |row| / 127 = 2/127 and 1/127); b, a vector: one scale
    assert body["w#s"].tolist() == pytest.approx([2 / 127, 1 / 127])
    assert body["b#s"].shape == () and float(body["b#s"]) == pytest.approx(3 / 127)
    assert payload_bytes(body) == (4 + 2 * 4) + (3 + 4) == 19
    assert comp.bytes((128, 76), torch.float32) == 128 * 76 + 128 * 4
    out = decode_tensors(comp, body, like_of(X))
    assert float(out["w"][0, 1]) == pytest.approx(-2.0) and float(out["w"][1, 0]) == 1.0
    with pytest.raises(ConfigError, match="per_row"):
        Int8(per_row="yes")


def test_int8_body_bytes_and_zero_tensor():
    body, out = _roundtrip("int8")
    assert set(body) == {"w#q", "w#s", "b#q", "b#s"}
    assert payload_bytes(body) == (4 + 4) + (3 + 4) == 15
    assert float(out["b"][1]) == pytest.approx(3.0)  # the max element is exact
    zero = encode_tensors(Int8(), {"z": torch.zeros(3)}, {"z": 1})
    assert zero["z#q"].tolist() == [0, 0, 0] and float(zero["z#s"]) == 0.0


def test_int8_is_unbiased_and_its_noise_is_seeded():
    u1, u2 = uniform(torch.tensor([1, 2]), 50_000), uniform(torch.tensor([1, 2]), 50_000)
    assert torch.equal(u1, u2)  # a pure function of the keys
    assert not torch.equal(u1[0], u1[1])
    assert float(u1.min()) >= 0 and float(u1.max()) < 1 and abs(float(u1.mean()) - 0.5) < 0.01
    x = torch.full((1, 50_000), 0.3)
    x[0, 0] = 1.27
    decoded = Int8().roundtrip(x, torch.tensor([9]))
    assert float(decoded[0, 1:].mean()) == pytest.approx(0.3, abs=2e-3)  # E[C(x)] = x


def test_decode_refuses_what_is_not_the_expected_encoding():
    comp = TopK(0.5)
    body = encode_tensors(comp, X, KEYS)
    like = like_of(X)
    assert decode_tensors(comp, X, like) is not X  # a plain copy passes as it is
    with pytest.raises(CodecError, match="names"):
        decode_tensors(comp, {**body, "extra#v": torch.zeros(1)}, like)
    with pytest.raises(CodecError, match="dtype/shape"):
        decode_tensors(comp, {**body, "w#i": body["w#i"].long()}, like)
    with pytest.raises(CodecError, match="index outside"):
        decode_tensors(comp, {**body, "w#i": torch.tensor([0, 4], dtype=torch.int32)}, like)
    with pytest.raises(CodecError, match="-128"):
        i8 = encode_tensors(Int8(), X, KEYS)
        decode_tensors(Int8(), {**i8, "b#q": torch.tensor([-128, 0, 0], dtype=torch.int8)},
                       like)


def test_error_feedback_carries_the_residual():
    """CHOCO's public copy of a fixed vector converges to it: what top-k drops in one round
    is part of the next round's difference, so the sum of what was sent tends to x."""
    torch.manual_seed(0)
    x = {"p": torch.randn(200)}
    comm = Communication(Rule(TopK(0.1)), error_feedback=True)
    choco = Choco(comm)
    choco.start("k")
    total = torch.zeros(200)
    errors = []
    for r in range(60):
        body = choco.send(0, "head_r", x, r)
        assert payload_bytes(body) == 20 * 8  # 10% of 200 entries, value + index
        total += comm.decode("head_r", body, like_of(x))["p"]
        errors.append(float((x["p"] - total).norm()))
        assert torch.equal(choco.own[0, "head_r"]["p"], total)
    assert errors[-1] < 1e-6 * float(x["p"].norm())  # every entry sent in the end
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:], strict=False))
    plain = comm.decode("head_r", comm.encode("head_r", 0, 0, x), like_of(x))["p"]
    assert float((x["p"] - plain).norm()) > 0.5 * float(x["p"].norm())  # without: lost


def test_choco_merge_is_the_paper_update():
    """x_i + gamma * sum_j w_ij (x_hat_j - x_hat_i), by hand for two agents."""
    from parsefl.aggregation import build_aggregator

    comm = Communication(Rule(COMPRESSORS.create("none", {}, "c", "p")), error_feedback=True,
                         gamma=0.5)
    a, b = Choco(comm), Choco(comm)
    xa, xb = {"p": torch.tensor([1.0, 2.0])}, {"p": torch.tensor([3.0, -2.0])}
    a.start(0), b.start(0)
    qa, qb = a.send(0, "head_r", xa, 0), b.send(1, "head_r", xb, 0)
    a.receive(0, 1, "head_r", qb)
    merged = a.merge(build_aggregator("mean"), 0, "head_r", xa, [1], 0.5, {1: 0.5})
    # x_hat_a = xa, x_hat_b = xb: xa + 0.5 * 0.5 * (xb - xa) = [1.5, 1.0]
    assert merged["p"].tolist() == [1.5, 1.0]
    assert torch.equal(qa["p"], xa["p"])
    a.start(1)  # a new plan key: the public copies restart at zero
    assert a.own == {} and a.views == {}


def test_consensus_step_size_defaults_to_the_operators():
    comm = Communication(Rule(TopK(0.1)), {"head_r": Rule(Int8())}, error_feedback=True)
    assert comm.gamma_for("enc.fou") == 0.7 and comm.gamma_for("head_r") == 1.0
    fixed = Communication(Rule(TopK(0.1)), error_feedback=True, gamma=0.3)
    assert fixed.gamma_for("enc.fou") == 0.3


def test_periods_and_kinds_from_config():
    from parsefl.config import load_config

    cfg = load_config(None, ["communication.compressor=int8", "communication.period=2",
                             "communication.kinds={enc: {compressor: topk, params: "
                             "{fraction: 0.25}, period: 4}, head_r: {period: 1}}"])
    comm = Communication.from_config(cfg.communication)
    assert comm.compressor("enc.fou").name == "topk" and comm.compressor("enc.fou").fraction == 0.25
    assert comm.compressor("head_r").name == "int8" and comm.compressor("head_u.fou").name == "int8"
    assert [r for r in range(9) if comm.due("enc.pix", r)] == [0, 4, 8]
    assert [r for r in range(5) if comm.due("head_u.pix", r)] == [0, 2, 4]
    assert all(comm.due("head_r", r) for r in range(5))


@pytest.mark.parametrize("override,field", [
    ("communication.compressor=zip", "communication.compressor"),
    ("communication.kinds={encoder: {period: 2}}", "communication.kinds.encoder"),
    ("communication.kinds={enc: {compressor: gzip}}", "communication.kinds.enc.compressor"),
    ("communication.params={fraction: 0}", "communication.params"),
    ("communication.period=0", "communication.period"),
    ("communication.kinds={head_r: {period: 0}}", "communication.kinds.head_r.period"),
])
def test_bad_communication_config_names_the_field(override, field):
    from parsefl.config import load_config

    overrides = [override]
    if "fraction" in override:
        overrides.append("communication.compressor=topk")
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert err.value.field.startswith(field), err.value


@pytest.mark.parametrize("name", COMPRESSORS.names())
def test_every_compressor_bills_what_it_encodes(name):
    """Contract over every registered operator: the encoded body is exactly the parts it
    declares, its bytes are what ``bytes`` says (what the meter bills), and it decodes to the
    receiver's names, shapes and dtypes."""
    comp = COMPRESSORS.create(name, {}, "c", "p")
    x = {"w": torch.randn(5, 7, generator=torch.Generator().manual_seed(1)),
         "b": torch.randn(3, generator=torch.Generator().manual_seed(2))}
    body = encode_tensors(comp, x, {"w": 1, "b": 2})
    assert {k: (t.dtype, tuple(t.shape)) for k, t in body.items()} == \
        {k: (dt, tuple(s)) for k, (dt, s) in encoded_spec(comp, like_of(x)).items()}
    assert payload_bytes(body) == sum(comp.bytes(tuple(t.shape), t.dtype) for t in x.values())
    out = decode_tensors(comp, body, like_of(x))
    assert like_of(out) == like_of(x)
    assert torch.equal(comp.roundtrip(x["w"][None], torch.tensor([1]))[0], out["w"])
