"""What the taps share: routing a listener's calls to its models, the byte-bounded queue, and
the drain that decodes each model's exchanges and hands them to that model."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from aims_agent.collectors.exchange import mapping_for
from aims_agent.collectors.push import Decoded
from aims_agent.collectors.tap import Exchange, ExchangeQueue, Routes, decompress
from aims_agent.collectors.tap_drain import Sink, TapDrain
from aims_agent.config import ProxyConfig, SchemaConfig
from aims_agent.errors import StorageError
from aims_agent.metrics import Metrics
from aims_agent.schema import ModelSchema

UP = "http://127.0.0.1:1"
SCHEMA = ModelSchema(SchemaConfig(numeric=("a", "b"), prediction="p"))


def test_alone_a_model_takes_every_name_unless_it_names_one():
    assert Routes({"m": ProxyConfig(upstream=UP)}).model_named("anything") == "m"
    only = Routes({"m": ProxyConfig(upstream=UP, upstream_model="credit")})
    assert (only.model_named("credit"), only.model_named("other")) == ("m", None)
    assert only.model_named(None) == "m"  # a call that names no model (a custom path)


def test_shared_routes_are_by_name_or_path():
    routes = Routes(
        {
            "m1": ProxyConfig(upstream=UP),
            "m2": ProxyConfig(upstream=UP, upstream_model="fraud"),
            "m3": ProxyConfig(upstream=UP, protocol="json", inference_path="/score/"),
        }
    )
    assert routes.shared and routes.by_key == {"m1": "m1", "fraud": "m2", "/score": "m3"}
    assert [routes.model_named(n) for n in ("m1", "fraud", "m2", None)] == ["m1", "m2", None, None]
    with pytest.raises(ValueError, match="at least one model"):
        Routes({})


def ex(model: str, body: bytes = b"x" * 10, **kw: object) -> Exchange:
    return Exchange(
        model=model,
        protocol="oip-v2",
        path="/v2/models/m/infer",
        request=body,
        response=body,
        received_at=5.0,
        **kw,  # type: ignore[arg-type]
    )


def test_the_queue_is_bounded_in_bytes_and_wakes_its_drain():
    async def main() -> None:
        q = ExchangeQueue(max_bytes=50)
        waiter = asyncio.create_task(q.wait())
        assert q.put(ex("a")) and q.put(ex("b"))  # 20 bytes each
        await asyncio.wait_for(waiter, 1)
        assert not q.put(ex("c"))  # 60 > 50: refused, the caller counts it dropped
        assert [e.model for e in q.take(1)] == ["a"] and len(q) == 1
        assert q.put(ex("c")) and [e.model for e in q.take(10)] == ["b", "c"]

    asyncio.run(main())


def test_bodies_come_back_without_their_encodings():
    body = b'{"a": 1}'
    assert ex("m", gzip.compress(body), request_encoding="gzip").bodies()[0] == body
    assert decompress(body, "identity") == body
    with pytest.raises(ValueError, match="'br' is not decoded"):
        decompress(body, "br")
    with pytest.raises(ValueError, match="cannot be decompressed"):
        decompress(b"not gzip", "gzip")


def oip(rid: str) -> tuple[bytes, bytes]:
    request = {
        "id": rid,
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}],
    }
    response = {"outputs": [{"name": "p", "shape": [1], "datatype": "INT64", "data": [1]}]}
    return json.dumps(request).encode(), json.dumps(response).encode()


def test_the_drain_hands_each_model_its_rows_with_their_aliases():
    delivered: dict[str, list[Decoded]] = {"m1": [], "m2": []}

    def sink(model: str, fail: bool = False) -> Sink:
        async def deliver(d: Decoded) -> int:
            if fail:
                raise StorageError("disk full")
            delivered[model].append(d)
            return len(d.rows)

        cfg = ProxyConfig(upstream=UP)
        return Sink(mapping_for(cfg, SCHEMA), SCHEMA, deliver=deliver, reject=lambda n: None)

    async def main() -> Metrics:
        metrics = Metrics()
        q = ExchangeQueue(max_bytes=10_000)
        for model, rid, echoed in (("m1", "a", "gen-a"), ("m2", "b", None), ("m1", "c", None)):
            request, response = oip(rid)
            q.put(
                Exchange(
                    model=model,
                    protocol="oip-v2",
                    path="/v2/models/x/infer",
                    request=request,
                    response=response,
                    received_at=7.0,
                    echoed_id=echoed,
                )
            )
        q.put(ex("m3"))  # undecodable bytes of a model whose storage fails
        drain = TapDrain({"m1": sink("m1"), "m2": sink("m2"), "m3": sink("m3", fail=True)}, metrics)
        await drain.flush(q)
        return metrics

    metrics = asyncio.run(main())
    [m1] = delivered["m1"]
    assert m1.ids == ["a", "c"] and m1.aliases == [("gen-a",), ()] and m1.timestamps == [7.0] * 2
    assert delivered["m2"][0].ids == ["b"] and delivered["m2"][0].aliases == []
    samples = metrics.proxy_samples
    assert samples.labels("m1", "decoded")._value.get() == 2
    assert samples.labels("m3", "undecodable")._value.get() == 1


def test_a_multiclass_model_reads_its_probability_vector_as_every_classs_score():
    schema = ModelSchema(
        SchemaConfig(
            numeric=("a", "b"), prediction="p", label="y", scores={"lo": "p_lo", "hi": "p_hi"}
        )
    )
    mapping = mapping_for(ProxyConfig(upstream=UP), schema)
    assert mapping.classes == ("lo", "hi") and mapping.per_class
    assert not mapping_for(ProxyConfig(upstream=UP), SCHEMA).per_class
