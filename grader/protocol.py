"""The worker channel's wire format, for both ends: length-prefixed msgpack frames, arrays as raw float64.

A frame is a 4-byte little-endian length and that many bytes of msgpack. Arrays travel as
``{"dtype": name, "shape": [...], "data": <bytes>}`` with ``data`` the little-endian float64 values in C order:
no list of Python floats is built on either side. The parent unpacks a worker's frame with every msgpack limit
set (no extension types, bounded strings, lists and maps) and then checks the plain data it got: a learner's code
can write anything on this socket, and what it writes is never more than refused numbers.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy as np

MAX_FRAME = 16 << 20  # a reply of MAX_ELEMENTS numbers, and the arguments it changed, fit well within
MAX_ELEMENTS = 100_000  # far above any lab's arrays; keeps the grader's memory bounded
MAX_DIMENSIONS = 32
MAX_ITEMS = 100_000  # entries of any one list or map in a frame
HEADER = struct.Struct("<I")
FLOAT64 = np.dtype("<f8")


class ProtocolError(Exception):
    """A frame that is not what the other end sends: too large, not msgpack, or not the plain data expected."""


class FrameTooLarge(ProtocolError):
    """A frame header claiming more than ``MAX_FRAME``: refused before its body is read."""


def frame(message: Any) -> bytes:
    """One message, ready to write (strings with lone surrogates travel as they are: a file name may hold them)."""
    body = msgpack.packb(message, use_bin_type=True, unicode_errors="surrogatepass")
    return HEADER.pack(len(body)) + body


def frame_length(buffer: bytes | bytearray) -> int | None:
    """The length of the frame at the start of ``buffer`` (None: not all of its header is there yet)."""
    if len(buffer) < HEADER.size:
        return None
    (length,) = HEADER.unpack_from(buffer)
    if length > MAX_FRAME:
        raise FrameTooLarge(length)
    return length


def unpack(body: bytes) -> Any:
    """A frame's body as plain data, with every size bounded; anything else is a ProtocolError."""
    try:
        return msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True, unicode_errors="surrogatepass",
                               max_str_len=MAX_FRAME, max_bin_len=MAX_FRAME, max_array_len=MAX_ITEMS,
                               max_map_len=MAX_ITEMS, max_ext_len=0, ext_hook=_no_extension)
    except Exception as exc:  # noqa: BLE001 - msgpack's errors (extra data, depth, ext types, bad UTF-8) alike
        raise ProtocolError(type(exc).__name__) from None


def _no_extension(code: int, data: bytes) -> Any:
    raise ValueError("extension type")


def array_data(array: np.ndarray) -> dict[str, Any]:
    """An array's values as they travel: float64, little-endian, C order (the dtype is named by the caller)."""
    return {"shape": list(array.shape), "data": np.ascontiguousarray(array, dtype=FLOAT64).tobytes()}


def array_from(data: Any) -> np.ndarray | None:
    """The array a frame describes, or None unless it is exactly one: integer dimensions within the caps, and as
    many bytes as they say. The result is the parent's own writable copy."""
    if not isinstance(data, dict):
        return None
    shape, raw = data.get("shape"), data.get("data")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMENSIONS and isinstance(raw, bytes)
            and all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape)):
        return None
    count = math.prod(shape)  # exact integers: no overflow to a small size
    if count > MAX_ELEMENTS or len(raw) != count * FLOAT64.itemsize:
        return None
    return np.frombuffer(raw, dtype=FLOAT64).reshape(shape).copy()
