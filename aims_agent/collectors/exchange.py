"""One model-server exchange (request and response bodies) -> schema-checked rows.

Shared by the reverse-proxy tap and the KServe payload-logger receiver: the protocol decoders
find the rows, and each record is then validated like a pushed one, so a bad row is reported
by position, id and field while the rest of the exchange is kept.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aims_agent.collectors import protocols
from aims_agent.collectors.push import Decoded
from aims_agent.config import DecodeConfig, ProxyConfig
from aims_agent.errors import RecordError
from aims_agent.schema import ModelSchema, epoch


def mapping_for(cfg: DecodeConfig, schema: ModelSchema) -> protocols.Mapping:
    """The protocol mapping of a model's decode settings; features in schema order."""
    paths: dict[str, Any] = {}
    if isinstance(cfg, ProxyConfig):
        paths = {
            "records_path": cfg.records_path,
            "features_path": cfg.features_path,
            "prediction_path": cfg.prediction_path,
            "score_path": cfg.score_path,
        }
    return protocols.Mapping(
        features=tuple(c.name for c in schema.features),
        prediction=cfg.prediction,
        score=cfg.score,
        score_index=cfg.score_index,
        # a multiclass model's probability vector: every class's score, in the schema's order
        classes=tuple(schema.class_scores),
        per_class=bool(schema.class_scores),
        input=cfg.input,
        id_field=cfg.id_field,
        **paths,
    )


def decode_exchange(
    protocol: str,
    mapping: protocols.Mapping,
    schema: ModelSchema,
    request: bytes,
    response: bytes,
    *,
    path: str,
    request_id: str | None,
    now: float,
    echoed_id: str | None = None,
    header_lengths: tuple[int | None, int | None] = (None, None),
) -> Decoded:
    """Records of one exchange, validated like pushed records; ProtocolError if undecodable."""
    records = protocols.decode(
        protocol,
        request,
        response,
        path=path,
        mapping=mapping,
        request_id=request_id,
        echoed_id=echoed_id,
        header_lengths=header_lengths,
    )
    rows, ids, stamps, errors = [], [], [], []
    aliases: list[tuple[str, ...]] = []
    categorical = [c.name for c in schema.features if c.kind == "categorical"]
    for index, rec in enumerate(records):
        others = rec.pop("aliases", ())
        assert isinstance(others, list | tuple)
        features = rec.get("features")
        if isinstance(features, dict):  # a float tensor carries category codes as 1.0, 2.0
            for name in categorical:
                v = features.get(name)
                if isinstance(v, float) and v.is_integer():
                    features[name] = int(v)
        try:
            record: Any = msgspec.convert(rec, schema.record_type)
        except msgspec.ValidationError as exc:
            errors.append(
                RecordError(
                    index=index, record_id=str(rec.get("id")), field="record", reason=str(exc)
                )
            )
            continue
        rows.append(schema.row(record))
        ids.append(schema.record_id(record.id))
        aliases.append(tuple(schema.record_id(a) for a in others))
        stamps.append(epoch(record.timestamp, default=now))
    if not any(aliases):
        aliases = []
    return Decoded(rows=rows, ids=ids, timestamps=stamps, errors=errors, aliases=aliases)
