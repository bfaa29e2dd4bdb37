"""The JSON codec for job arguments. Never pickle; never import a name found in a payload.

Plain JSON values pass through. A few Python types are tagged so they come back as
themselves: ``{"__cv__": "datetime", "v": "2026-11-28T10:00:00+00:00"}``. Dataclasses and
pydantic models are written as plain objects and rebuilt from the job function's own
annotations when arguments are bound (``bind_arguments``), so no type name is ever read
from a payload.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import inspect
import json
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import BadArguments, PayloadTooLarge, SerializationError

try:  # the "fast" extra: a quicker codec for the same JSON
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _orjson = None  # type: ignore[assignment]
if TYPE_CHECKING:
    from .encryption import PayloadCipher

TAG = "__cv__"
FORMAT_VERSION = 1


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise SerializationError(
            f"arguments are not valid JSON: {value!r} (JSON has no NaN or infinity)")
    if isinstance(value, list | tuple):
        return [_encode_value(v) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"dictionary keys must be strings to be sent as JSON, got {type(key).__name__}"
                )
            out[key] = _encode_value(item)
        if TAG in out:
            return {TAG: "dict", "v": out}
        return out
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, set | frozenset):
        return {TAG: "set", "v": [_encode_value(v) for v in value]}
    if isinstance(value, bytes):
        return {TAG: "bytes", "v": value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 model
        return _encode_value(dump(mode="json"))
    raise SerializationError(
        f"cannot send a {type(value).__name__} as a job argument: use JSON values, datetime, "
        "date, Decimal, UUID, bytes, sets, dataclasses or pydantic models"
    )


def _plain(values: Iterable[Any]) -> bool:
    """Every value a str, int, bool, None or finite float: JSON as it is (the common
    case of a dispatch, checked without rebuilding anything)."""
    for value in values:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            continue
        if kind is float and math.isfinite(value):
            continue
        return False
    return True


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": lambda v: dt.datetime.fromisoformat(v),
    "date": lambda v: dt.date.fromisoformat(v),
    "time": lambda v: dt.time.fromisoformat(v),
    "timedelta": lambda v: dt.timedelta(seconds=float(v)),
    "decimal": lambda v: decimal.Decimal(v),
    "uuid": lambda v: uuid.UUID(v),
    "bytes": lambda v: bytes.fromhex(v),
}


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: _decode_value(v) for k, v in value.items()}
        inner = value.get("v")
        if tag == "dict":
            if not isinstance(inner, dict):
                raise SerializationError("tagged dict without an object value")
            return {k: _decode_value(v) for k, v in inner.items()}
        if tag == "set":
            if not isinstance(inner, list):
                raise SerializationError("tagged set without a list value")
            return {_decode_value(v) for v in inner}
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise SerializationError(f"unknown value tag {tag!r} in payload")
        try:
            return decoder(inner)
        except (TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise SerializationError(f"bad {tag} value in payload: {inner!r}") from exc
    return value


@dataclasses.dataclass(slots=True)
class Payload:
    """A decoded payload: the job name, its arguments and per-dispatch options."""

    job: str
    args: list[Any]
    kwargs: dict[str, Any]
    meta: dict[str, Any]


def _finite(document: Any) -> bool:
    """No NaN or infinity anywhere (orjson would write them as null; JSON has neither)."""
    if isinstance(document, float):
        return math.isfinite(document)
    if isinstance(document, dict):
        return all(_finite(v) for v in document.values())
    if isinstance(document, list):
        return all(_finite(v) for v in document)
    return True


def _dumps(document: Mapping[str, Any], *, finite: bool = False) -> str:
    """Compact UTF-8 JSON; orjson when installed (the ``fast`` extra), else the stdlib.
    Both produce the same values; orjson takes a third of the time on typical payloads.
    ``finite``: the caller has already refused NaN and infinity."""
    if _orjson is not None and (finite or _finite(document)):
        try:
            return str(_orjson.dumps(document).decode("utf-8"))
        except TypeError:  # orjson.JSONEncodeError: integers past 64 bits, lone surrogates
            pass
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def _loads(text: str | bytes) -> Any:
    # orjson reads integers beyond 64 bits (and some of 19 digits) as floats, silently:
    # a payload with a run of 19+ digits anywhere goes to the exact stdlib decoder
    long_digits = (_LONG_DIGITS_BYTES.search(text) if isinstance(text, bytes)
                   else _LONG_DIGITS.search(text))
    if _orjson is not None and long_digits is None:
        try:
            return _orjson.loads(text)
        except ValueError:  # let the stdlib decide, and word the error
            pass
    return json.loads(text, parse_constant=_no_constants)


def encode_payload(
    job: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    meta: Mapping[str, Any],
    max_bytes: int,
    cipher: PayloadCipher | None = None,
) -> str:
    """Encode one job's payload to JSON text (sealed in an envelope when ``cipher`` is
    given), enforcing the size cap on what the store will hold."""
    document = {
        "v": FORMAT_VERSION,
        "job": job,
        # plain values as they are; anything else (and NaN, infinity) through _encode_value
        "args": list(args) if _plain(args) else _encode_value(list(args)),
        "kwargs": (dict(kwargs) if TAG not in kwargs and _plain(kwargs.values())
                   and all(type(key) is str for key in kwargs)
                   else _encode_value(dict(kwargs))),
        "meta": dict(meta),
    }
    try:
        text = _dumps(document, finite=_finite(document["meta"]))
    except ValueError as exc:
        raise SerializationError(f"job {job!r}: arguments are not valid JSON: {exc}") from exc
    _check_size(job, text, max_bytes)
    if cipher is not None:
        text = _dumps(cipher.seal(job, text))
        _check_size(job, text, max_bytes)
    return text


def _check_size(job: str, text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8")) if len(text) * 4 > max_bytes else len(text)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"job {job!r}: payload is {size} bytes, over the cap of {max_bytes} bytes "
            "(pass a reference such as a row id instead, or raise payload_max_bytes)"
        )


def _load_object(text: str | bytes) -> dict[str, Any]:
    try:
        document = _loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SerializationError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SerializationError("payload is not a JSON object")
    return document


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON: encoding refuses them, so decoding does too."""
    raise ValueError(f"{name} is not a JSON value")


def decode_payload(text: str | bytes, max_bytes: int | None = None,
                   cipher: PayloadCipher | None = None) -> Payload:
    """Decode a stored payload (opening an encrypted envelope with ``cipher``); any problem
    is a SerializationError with a clear message."""
    if max_bytes is not None and len(text) > max_bytes:
        raise PayloadTooLarge(f"stored payload is {len(text)} bytes, over the cap of {max_bytes}")
    document = _load_object(text)
    if "enc" in document:
        name = str(document.get("job"))[:200]
        if cipher is None:
            raise SerializationError(
                f"payload of {name!r} is encrypted but this worker has no "
                "CONVEYOR_ENCRYPTION_KEYS: give it the keys the job was sealed with")
        document = _load_object(cipher.open(name, document))
        if "enc" in document:
            raise SerializationError(f"payload of {name!r} is encrypted twice")
    job = document.get("job")
    args = document.get("args", [])
    kwargs = document.get("kwargs", {})
    meta = document.get("meta", {})
    if not isinstance(job, str) or not job:
        raise SerializationError("payload has no job name")
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise SerializationError(f"payload of {job!r} has malformed args, kwargs or meta")
    return Payload(job, _decode_value(args), _decode_value(kwargs), meta)


def _coerce(value: Any, annotation: Any) -> Any:
    """Rebuild a dataclass or pydantic model from a plain object, by the declared type."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return _coerce(value, options[0])
        return value
    if origin in (list, Sequence) and isinstance(value, list):
        (inner,) = typing.get_args(annotation) or (Any,)
        return [_coerce(v, inner) for v in value]
    if isinstance(annotation, type) and isinstance(value, dict):
        if dataclasses.is_dataclass(annotation):
            try:
                return annotation(**value)
            except TypeError as exc:
                raise BadArguments(f"cannot build {annotation.__name__}: {exc}") from exc
        validate = getattr(annotation, "model_validate", None)
        if callable(validate):
            try:
                return validate(value)
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                raise BadArguments(f"cannot build {annotation.__name__}: {exc}") from exc
    return value


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: bind untyped
        return {}


def bind_arguments(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    signature: inspect.Signature | None = None,
    hints: dict[str, Any] | None = None,
) -> inspect.BoundArguments:
    """Bind decoded arguments to ``func``, rebuilding typed values from its annotations.
    Pass a cached ``signature`` and ``hints`` on hot paths."""
    if signature is None:
        signature = inspect.signature(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise BadArguments(f"arguments do not match {func.__qualname__}{signature}: {exc}") from exc
    if hints is None:
        hints = type_hints(func)
    for name, value in list(bound.arguments.items()):
        hint = hints.get(name, inspect.Parameter.empty)
        if hint is not inspect.Parameter.empty:
            bound.arguments[name] = _coerce(value, hint)
    return bound
