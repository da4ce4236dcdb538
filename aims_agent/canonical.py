"""Canonical JSON: one byte string per JSON value, so that a hash of a record is reproducible.

The rules follow RFC 8785 (JSON Canonicalization Scheme):

- objects: keys sorted by their UTF-16 code units (as RFC 8785; differs from code-point order
  only for characters beyond U+FFFF), keys must be strings, no duplicate keys (a dict has none);
- no insignificant whitespace: `,` and `:` only;
- strings: UTF-8, only `"`, `\\` and the controls below U+0020 escaped (`\\b \\f \\n \\r \\t`,
  else `\\u00xx` in lower case); everything else as is, so "é" is two bytes, not `\\u00e9`;
  a lone surrogate is refused;
- numbers: a float is written as ECMAScript writes a double (the shortest digits that read back
  to the same double; `1.0` -> `1`, `1e21` -> `1e+21`, `1e-7` -> `1e-7`, `-0.0` -> `0`), so a
  value that went through a JSON column and came back as 1.0 instead of 1 hashes the same; an
  int is written exactly (RFC 8785 would round ints beyond 2**53 to a double: keep ids within
  I-JSON's range); NaN and the infinities are refused, JSON has no such numbers;
- `true`, `false`, `null`; a tuple is an array; any other type is refused.

    >>> canonical({"b": [1.0, "é"], "a": None})
    b'{"a":null,"b":[1,"\\xc3\\xa9"]}'
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aims_agent.errors import CanonicalJSONError


def canonical(value: object) -> bytes:
    """The canonical JSON of `value` as UTF-8 bytes; CanonicalJSONError if it has none."""
    parts: list[str] = []
    _write(value, parts, "$")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise CanonicalJSONError(f"not valid Unicode: {exc.reason}") from exc


def iso(ts: float) -> str:
    """An epoch time as RFC 3339 UTC with a Z, as every evidence record writes it."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits (read in chunks, never whole)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_hex(value: object) -> str:
    """SHA-256 of the canonical JSON of `value`, as 64 hex digits."""
    return hashlib.sha256(canonical(value)).hexdigest()


def _key(k: str) -> bytes:
    try:
        return k.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError(f"key {k!r} is not valid Unicode") from exc


_dumps = json.encoder.encode_basestring  # a str as RFC 8785 writes it (no ASCII escaping)


def _sorted_keys(value: Mapping[Any, Any], path: str) -> list[str]:
    keys = list(value)
    if all(type(k) is str and k.isascii() for k in keys):
        return sorted(keys)  # ASCII: code point order is UTF-16 order
    bad = next((k for k in keys if not isinstance(k, str)), None)
    if bad is not None:
        raise CanonicalJSONError(f"{path}: object keys must be strings, got {bad!r}")
    return sorted(keys, key=_key)


def _write(value: object, out: list[str], path: str) -> None:
    # `path` says where a value without a canonical form is; built only for containers
    t = type(value)
    if t is str:
        out.append(_dumps(value))  # type: ignore[arg-type]
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif t is float:
        out.append(number(value, path))  # type: ignore[arg-type]
    elif t is int:
        out.append(str(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for k in _sorted_keys(value, path):
            if not first:
                out.append(",")
            first = False
            out.append(_dumps(k))
            out.append(":")
            v = value[k]
            if type(v) is str:
                out.append(_dumps(v))
            else:
                _write(v, out, f"{path}.{k}")
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, f"{path}[{i}]")
        out.append("]")
    elif isinstance(value, str):
        out.append(_dumps(str(value)))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(number(float(value), path))
    else:
        raise CanonicalJSONError(f"{path}: {type(value).__name__} is not a JSON type")


def number(x: float, path: str = "$") -> str:
    """A double as ECMAScript's Number.prototype.toString writes it (RFC 8785, 3.2.2.3)."""
    if not math.isfinite(x):
        raise CanonicalJSONError(f"{path}: {x} is not a JSON number")
    if x == 0:
        return "0"
    r = repr(x)
    if "e" not in r and "n" not in r:  # plain decimal digits: as ECMAScript writes them
        return r[:-2] if r.endswith(".0") else r
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that read back to x; Decimal splits digits and exponent
    dec = Decimal(repr(abs(x))).normalize()
    _, digit_tuple, exponent = dec.as_tuple()
    s, exp = "".join(map(str, digit_tuple)), int(exponent)
    k, n = len(s), exp + len(s)  # x = 0.s * 10**n
    if k <= n <= 21:
        text = s + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{s[:n]}.{s[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + s
    else:
        e = n - 1
        mantissa = s if k == 1 else f"{s[0]}.{s[1:]}"
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def json_safe(value: Any) -> Any:
    """`value` with each NaN or infinity replaced by None: JSON has no such numbers, a JSON
    column (PostgreSQL's) refuses them and canonical JSON has no form for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
