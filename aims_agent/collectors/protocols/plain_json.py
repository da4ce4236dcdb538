"""Plain JSON with a configured field mapping, for model servers that follow no standard.

Paths are dot-separated keys (`data.rows`); a numeric step indexes a list and any other step
into a list applies to each item, so `results.label` reads the label of every result. The
request holds the rows at `records_path` (a list; `""` is the body itself), or is one row when
no path is set; each row holds its features at `features_path` (or is them): an object by
feature name or a list by position. The response holds the predictions at `prediction_path`
(or is them) and optionally the scores at `score_path`: a list aligned with the rows, or one
value for a single row. A row carrying `id_field` keeps that id.
"""

from __future__ import annotations

from typing import Any

from aims_agent.collectors.protocols._core import (
    Decoder,
    Features,
    Mapping,
    Output,
    Row,
    at,
    body_id,
    describe,
)
from aims_agent.collectors.protocols._values import (
    named,
    output,
    pair,
    positional,
    score_value,
)
from aims_agent.errors import InvalidPayload


def resolve(doc: object, path: str | None, loc: str) -> tuple[Any, str]:
    """The value at a dot-separated path and its location; None or "" is the value itself."""
    if not path:
        return doc, loc
    return _walk(doc, path.split("."), loc), at(loc, path)


def _walk(doc: object, steps: list[str], loc: str) -> Any:
    for k, step in enumerate(steps):
        if isinstance(doc, dict):
            if step not in doc:
                raise InvalidPayload(loc, f"no key {step!r}")
            doc, loc = doc[step], at(loc, step)
        elif isinstance(doc, list):
            if not (step.isascii() and step.isdigit()):
                for i, item in enumerate(doc):
                    if isinstance(item, list):  # map over one list level only
                        raise InvalidPayload(
                            at(loc, i), f"cannot take {step!r} of {describe(item)}"
                        )
                return [_walk(item, steps[k:], at(loc, i)) for i, item in enumerate(doc)]
            index = int(step)
            if index >= len(doc):
                raise InvalidPayload(loc, f"index {index} is out of range for {describe(doc)}")
            doc, loc = doc[index], at(loc, index)
        else:
            raise InvalidPayload(loc, f"cannot take {step!r} of {describe(doc)}")
    return doc


def _row(row: object, mapping: Mapping, loc: str) -> Row:
    value, vloc = resolve(row, mapping.features_path, loc)
    features: Features = (
        named(value, mapping, vloc) if isinstance(value, dict) else positional(value, mapping, vloc)
    )
    return Row(features, None, None, body_id(row, mapping.id_field))


def _aligned(value: object, n_rows: int, loc: str) -> list[tuple[Any, str]]:
    """One (value, location) per row: a list of n values, or one value for a single row.

    For a single row a list of other than one item is that row's value (class scores).
    """
    if isinstance(value, list) and (n_rows != 1 or len(value) == 1):
        if len(value) != n_rows:
            raise InvalidPayload(loc, f"{len(value)} values for {n_rows} request rows")
        return [(v, at(loc, i)) for i, v in enumerate(value)]
    if n_rows == 1:
        return [(value, loc)]
    raise InvalidPayload(
        loc, f"expected a list of {n_rows} values (one per row), got {describe(value)}"
    )


def rows(request: object, response: object, mapping: Mapping) -> list[Row]:
    if mapping.records_path is None:
        inputs = [_row(request, mapping, "request")]
    else:
        found, loc = resolve(request, mapping.records_path, "request")
        items = found if isinstance(found, list) else [found]
        locs = [at(loc, i) for i in range(len(items))] if isinstance(found, list) else [loc]
        inputs = [_row(item, mapping, item_loc) for item, item_loc in zip(items, locs, strict=True)]
    n = len(inputs)
    value, loc = resolve(response, mapping.prediction_path, "response")
    outs: list[Output] = [output(v, mapping, vloc) for v, vloc in _aligned(value, n, loc)]
    if mapping.score_path is not None:
        svalue, sloc = resolve(response, mapping.score_path, "response")
        scores = _aligned(svalue, n, sloc)
        outs = [
            (p, score_value(s, mapping, s_loc))
            for (p, _), (s, s_loc) in zip(outs, scores, strict=True)
        ]
    paired = pair([r.features for r in inputs], outs, loc)
    return [
        Row(p.features, p.prediction, p.score, r.id) for p, r in zip(paired, inputs, strict=True)
    ]


DECODER = Decoder(name="json", rows=rows)
