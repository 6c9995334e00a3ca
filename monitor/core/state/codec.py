"""The one codec of the state: plain data and JSON out, typed state back, and deep copies.

Every piece of state is a msgspec Struct (or built of them), so what a type checkpoints is
declared once, by its fields; decoding is checked against the same annotations, and
whatever a type derives from its fields (a column's edges as an array, the names of a
layout's score columns) it rebuilds in ``__post_init__``, which msgspec runs on decode too.

Three kinds of value are not msgspec-native and are handled here, once for all types:

- :class:`ClassCounts` is stored as its mapping of class -> count;
- numpy arrays as (nested) lists, read back with the dtype of their annotation;
- ``OrderedDict`` (the joins' arrival order) as a mapping, read back in the stored order.

The JSON form is msgspec's: exact sums (Python ints of any size) stay exact, and the state
holds no infinite or NaN float (JSON has none).
"""

from __future__ import annotations

import copy
import typing
from collections import OrderedDict
from typing import Any, TypeVar

import msgspec
import numpy as np

from monitor.core.state.counts import ClassCounts

T = TypeVar("T")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, ClassCounts):
        return value.counts
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"cannot encode a {type(value).__name__}")


def _dec_hook(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind) or kind
    if origin is ClassCounts:
        return ClassCounts(msgspec.convert(value, dict[str, int]))
    if origin is np.ndarray:
        # NDArray[np.int64] is ndarray[Any, dtype[int64]]: the dtype is the argument of the second argument
        dtype_args = typing.get_args(typing.get_args(kind)[1]) if typing.get_args(kind) else ()
        return np.asarray(value, dtype=dtype_args[0] if dtype_args else np.float64)
    if origin is OrderedDict:
        key, item = typing.get_args(kind)
        return OrderedDict(
            msgspec.convert(value, dict[key, item], dec_hook=_dec_hook, str_keys=True)  # type: ignore[valid-type]
        )
    raise NotImplementedError(f"cannot decode a {kind!r}")


_json_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode(state: Any) -> Any:
    """The state as plain data of the JSON shapes (keys as text); it reads and never changes the state."""
    return msgspec.to_builtins(state, enc_hook=_enc_hook, str_keys=True)


def decode(data: Any, kind: type[T]) -> T:
    """The state of type ``kind`` from plain data (as :func:`encode` or a JSON parser gives it);
    msgspec.ValidationError (a ValueError) names the path of what does not fit."""
    return msgspec.convert(data, kind, dec_hook=_dec_hook, str_keys=True)


def to_json(document: Any) -> bytes:
    """A document (plain data, state or both) as JSON bytes, in one pass."""
    return _json_encoder.encode(document)


def from_json(data: bytes) -> Any:
    """Plain data from JSON bytes (integers of any size stay exact); msgspec.DecodeError when it is not JSON."""
    return msgspec.json.decode(data)


def clone(state: T) -> T:
    """An independent deep copy: changing it leaves the original as it was."""
    return copy.deepcopy(state)
