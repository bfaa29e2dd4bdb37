from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid

import pytest
from pydantic import BaseModel

from conveyor.errors import BadArguments, PayloadTooLarge, SerializationError
from conveyor.serialization import bind_arguments, decode_payload, encode_payload


@dataclasses.dataclass
class Address:
    street: str
    number: int


class Order(BaseModel):
    id: int
    total: decimal.Decimal


def roundtrip(*args: object, **kwargs: object) -> tuple[list[object], dict[str, object]]:
    text = encode_payload("j", args, kwargs, {"tries": 2}, 1 << 20)
    payload = decode_payload(text)
    assert payload.job == "j" and payload.meta == {"tries": 2}
    return payload.args, payload.kwargs


def test_typed_values_come_back_as_themselves() -> None:
    when = dt.datetime(2026, 11, 28, 10, 30, tzinfo=dt.UTC)
    values = [when, dt.date(2026, 1, 2), decimal.Decimal("12.30"), uuid.UUID(int=7),
              {1, 2}, b"\x00\xff", dt.timedelta(seconds=90), dt.time(8, 15)]
    args, _ = roundtrip(*values)
    assert args == values
    assert type(args[2]) is decimal.Decimal and str(args[2]) == "12.30"


def test_plain_json_and_nested_values() -> None:
    args, kwargs = roundtrip([1, "a", None, True, 1.5], {"k": [dt.date(2026, 1, 1)]}, x={"y": 1})
    assert args == [[1, "a", None, True, 1.5], {"k": [dt.date(2026, 1, 1)]}]
    assert kwargs == {"x": {"y": 1}}


def test_a_user_dict_that_looks_like_a_tag_is_escaped() -> None:
    args, _ = roundtrip({"__cv__": "datetime", "v": "not a date"})
    assert args == [{"__cv__": "datetime", "v": "not a date"}]


def test_dataclasses_and_models_are_rebuilt_from_annotations_only() -> None:
    def job(address: Address, order: Order, maybe: Address | None = None) -> None: ...

    args, kwargs = roundtrip(Address("Main", 1), Order(id=3, total=decimal.Decimal("9.5")))
    assert args[0] == {"street": "Main", "number": 1}  # no type name travels
    bound = bind_arguments(job, args, kwargs)
    assert bound.arguments["address"] == Address("Main", 1)
    assert bound.arguments["order"] == Order(id=3, total=decimal.Decimal("9.5"))


def test_unsupported_values_fail_at_encode() -> None:
    with pytest.raises(SerializationError, match="cannot send a object"):
        encode_payload("j", [object()], {}, {}, 1 << 20)
    with pytest.raises(SerializationError, match="keys must be strings"):
        encode_payload("j", [{1: 2}], {}, {}, 1 << 20)
    with pytest.raises(SerializationError, match="not valid JSON"):
        encode_payload("j", [float("nan")], {}, {}, 1 << 20)


def test_plain_arguments_take_the_short_way_to_the_same_json() -> None:
    plain = encode_payload("j", ("a", 1, True, None, 2.5), {"n": 3, "s": "x"}, {}, 1 << 20)
    assert plain == encode_payload("j", ["a", 1, True, None, 2.5], {"n": 3, "s": "x"}, {},
                                   1 << 20)
    assert decode_payload(plain).args == ["a", 1, True, None, 2.5]
    with pytest.raises(SerializationError, match="NaN"):  # floats are still checked
        encode_payload("j", [], {"x": float("inf")}, {}, 1 << 20)
    # a keyword named like the tag is still escaped, and a big int is still exact
    _, kwargs = roundtrip(__cv__="datetime", v="x", big=2**70)
    assert kwargs == {"__cv__": "datetime", "v": "x", "big": 2**70}


def test_payload_cap() -> None:
    with pytest.raises(PayloadTooLarge, match="over the cap of 100 bytes"):
        encode_payload("j", ["x" * 200], {}, {}, 100)
    with pytest.raises(PayloadTooLarge):
        encode_payload("j", ["é" * 60], {}, {}, 100)  # counted in UTF-8 bytes
    with pytest.raises(PayloadTooLarge):
        decode_payload("x" * 101, max_bytes=100)


@pytest.mark.parametrize("garbage", [
    "", "{", "[]", "null", '{"job": 3}', '{"job": "j", "args": {}}',
    '{"job": "j", "args": [{"__cv__": "pickle", "v": "x"}]}',
    '{"job": "j", "args": [{"__cv__": "datetime", "v": "yesterday"}]}',
    b"\xff\xfe",
])
def test_garbage_payloads_are_clear_errors(garbage: str) -> None:
    with pytest.raises(SerializationError):
        decode_payload(garbage)


def test_bind_reports_wrong_arguments() -> None:
    def job(a: int, b: int = 2) -> None: ...

    with pytest.raises(BadArguments, match="arguments do not match"):
        bind_arguments(job, [1, 2, 3], {})
    with pytest.raises(BadArguments):
        bind_arguments(job, [], {"c": 1})


def test_fast_codec_matches_the_stdlib() -> None:
    """With orjson installed (the fast extra) payloads decode to the same values as the
    stdlib's; the stdlib takes over for what orjson refuses (huge ints) or would change."""
    import json

    from conveyor import serialization

    values = [1, -2**63, 2**64 + 1, -9_300_000_000_000_000_000, 2**64 - 1, 1.5, 1e-7,
              "é\u2028\x01\"\\", None, True, {"a": [1, {"b": "c"}]}, []]
    text = serialization.encode_payload("j", values, {"k": "v"}, {"tries": 3}, 1 << 20)
    assert json.loads(text)["args"] == values
    assert serialization.decode_payload(text).args == values
    assert serialization.decode_payload(text.encode()).kwargs == {"k": "v"}
    with pytest.raises(SerializationError, match="not valid JSON"):
        serialization.encode_payload("j", [], {"x": float("inf")}, {}, 1 << 20)
    with pytest.raises(SerializationError, match="not valid JSON"):
        serialization.decode_payload('{"job": "j", "args": [NaN')
