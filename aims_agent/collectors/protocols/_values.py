"""The rules that turn JSON values into feature values, predictions and scores, shared by the
protocol decoders so that every protocol reads a batch row, a class-score list or an object of
named outputs the same way.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from aims_agent.collectors.protocols._core import (
    Features,
    Mapping,
    Output,
    Row,
    Scalar,
    Score,
    at,
    describe,
    keys_of,
)
from aims_agent.errors import InvalidPayload


def is_scalar(value: object) -> TypeGuard[Scalar]:
    """A JSON scalar: string, number, boolean or null."""
    return value is None or isinstance(value, str | int | float)


def unwrap(value: object) -> object:
    """A value without single-element list wrappers: `[[3]]` -> `3` (a [batch, 1] tensor row)."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def feature_value(value: object, loc: str) -> Scalar:
    """One feature value: a JSON scalar, possibly wrapped in single-element lists."""
    value = unwrap(value)
    if is_scalar(value):
        return value
    raise InvalidPayload(loc, f"expected one feature value, got {describe(value)}")


def number(value: object, loc: str) -> float:
    """A JSON number as float; integers too large for a float are refused, not crashed on."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise InvalidPayload(loc, "number is out of the float range") from None
    raise InvalidPayload(loc, f"expected a number, got {describe(value)}")


def named(obj: dict[Any, Any], mapping: Mapping, loc: str) -> Features:
    """Features of an object keyed by feature name; absent ones stay absent (missing).

    Without mapping.features every scalar field except the id is taken: unknown names are
    ignored by the schema later, so nothing is gained by refusing nested ones.
    """
    if mapping.features:
        return {n: feature_value(obj[n], at(loc, n)) for n in mapping.features if n in obj}
    out: Features = {}
    for key, raw in obj.items():
        value = unwrap(raw)
        if key != mapping.id_field and is_scalar(value):
            out[key] = value
    return out


def positional(values: object, mapping: Mapping, loc: str) -> Features:
    """Features of one row given by position, named by mapping.features."""
    names = mapping.features
    if not names:
        raise InvalidPayload(loc, "positional feature values need mapping.features to name them")
    if len(names) == 1:
        return {names[0]: feature_value(values, loc)}
    while isinstance(values, list) and len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    if not isinstance(values, list):
        raise InvalidPayload(
            loc, f"expected a list of {len(names)} feature values, got {describe(values)}"
        )
    if len(values) != len(names):
        raise InvalidPayload(loc, f"{len(values)} values, but mapping.features names {len(names)}")
    return {
        n: feature_value(v, at(loc, i)) for i, (n, v) in enumerate(zip(names, values, strict=True))
    }


def row_features(value: object, mapping: Mapping, loc: str) -> Features:
    """Features of one instance-like row: an object by name, or values by position.

    An object none of whose keys is a feature but which has exactly one key (`{"input_1":
    [...]}`) is one unnamed input holding the features by position.
    """
    if not isinstance(value, dict):
        return positional(value, mapping, loc)
    names = mapping.features
    if names and len(value) == 1 and not any(n in value for n in names):
        key, inner = next(iter(value.items()))
        return positional(inner, mapping, at(loc, key))
    return named(value, mapping, loc)


def transpose(obj: dict[Any, Any], loc: str) -> list[dict[Any, Any]]:
    """Columnar `{name: [row values]}` as one object per row; all-scalar values are one row."""
    lists = {k: v for k, v in obj.items() if isinstance(v, list)}
    if not lists:
        return [obj]
    first = next(iter(lists))
    count = len(lists[first])
    for key, value in obj.items():
        if not isinstance(value, list):
            raise InvalidPayload(at(loc, key), f"{describe(value)} among batched lists")
        if len(value) != count:
            raise InvalidPayload(at(loc, key), f"{len(value)} rows, but {first!r} has {count}")
    return [{k: v[i] for k, v in lists.items()} for i in range(count)]


def pick(values: list[Any], index: int, loc: str) -> float:
    if index >= len(values):
        raise InvalidPayload(
            loc, f"score_index {index} is out of range for {len(values)} class scores"
        )
    return number(values[index], at(loc, index))


def class_scores(values: list[Any], mapping: Mapping, loc: str) -> Output:
    """A class-probability vector: prediction = argmax (or its class label), score by index."""
    if not values:
        raise InvalidPayload(loc, "expected a prediction, got an empty list")
    probs: list[float] = []
    for i, v in enumerate(values):
        if not isinstance(v, int | float) or isinstance(v, bool):
            reason = f"a list prediction is read as class scores, but item {i} is {describe(v)}"
            raise InvalidPayload(loc, reason)
        probs.append(number(v, at(loc, i)))
    best = max(range(len(probs)), key=probs.__getitem__)
    prediction: Scalar = best
    if mapping.classes:
        if len(mapping.classes) != len(probs):
            n = len(mapping.classes)
            raise InvalidPayload(loc, f"{len(probs)} class scores, but mapping.classes names {n}")
        prediction = mapping.classes[best]
    if mapping.per_class:
        return prediction, dict(zip(map(str, mapping.classes), probs, strict=True))
    score = None if mapping.score_index is None else pick(values, mapping.score_index, loc)
    return prediction, score


def score_value(value: object, mapping: Mapping, loc: str) -> Score:
    """A score: a number, null (no score), or a class-probability vector read at score_index
    (every class's, with `mapping.per_class`)."""
    value = unwrap(value)
    if value is None:
        return None
    if isinstance(value, list) and mapping.per_class:
        return class_scores(value, mapping, loc)[1]
    if isinstance(value, list):
        if mapping.score_index is None:
            raise InvalidPayload(loc, f"{describe(value)} as score; set mapping.score_index")
        return pick(value, mapping.score_index, loc)
    return number(value, loc)


def output(value: object, mapping: Mapping, loc: str) -> Output:
    """Prediction and score of one row's output value.

    A scalar is the prediction; a list is class scores; an object holds named outputs, the
    prediction under mapping.prediction (or its only key) and the score under mapping.score.
    """
    value = unwrap(value)
    if is_scalar(value):
        return value, None
    if isinstance(value, list):
        return class_scores(value, mapping, loc)
    if not isinstance(value, dict):
        raise InvalidPayload(loc, f"expected a prediction, got {describe(value)}")
    key = mapping.prediction
    if key is None:
        if len(value) != 1:
            raise InvalidPayload(
                loc, f"an object with keys {keys_of(value)}; set mapping.prediction"
            )
        key = next(iter(value))
    if key not in value:
        raise InvalidPayload(loc, f"no key {key!r} (keys: {keys_of(value)})")
    inner = unwrap(value[key])
    if isinstance(inner, dict):
        raise InvalidPayload(at(loc, key), "expected a prediction, got an object")
    prediction, score = output(inner, mapping, at(loc, key))
    if mapping.score is None:
        return prediction, score
    if mapping.score not in value:
        raise InvalidPayload(loc, f"no key {mapping.score!r} (keys: {keys_of(value)})")
    return prediction, score_value(value[mapping.score], mapping, at(loc, mapping.score))


def server_error(doc: object, loc: str, reason: str) -> InvalidPayload:
    """`reason` for a body lacking its outputs, or the model server's own error message."""
    if isinstance(doc, dict):
        for key in ("error", "message", "error_code"):
            if isinstance(doc.get(key), str):
                return InvalidPayload(loc, f"the model server returned an error: {doc[key][:300]}")
    return InvalidPayload(loc, reason)


def pair(features: list[Features], outputs: list[Output], loc: str) -> list[Row]:
    """Rows from aligned inputs and outputs; a count mismatch is an error at `loc`."""
    if len(outputs) != len(features):
        raise InvalidPayload(loc, f"{len(outputs)} predictions for {len(features)} request rows")
    return [Row(f, p, s) for f, (p, s) in zip(features, outputs, strict=True)]
