from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aims_agent.collectors.protocols import (
    PROTOCOLS,
    Mapping,
    ProtocolError,
    decode,
    detect,
)
from aims_agent.collectors.protocols.oip_v2 import DATATYPES
from aims_agent.collectors.push import decode_records
from aims_agent.config import SchemaConfig
from aims_agent.errors import PayloadError, UnknownAliasError
from aims_agent.schema import ModelSchema

IRIS = Mapping(features=("sepal_length", "sepal_width", "petal_length", "petal_width"))


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def run(protocol: str, request: Any, response: Any, mapping: Mapping = IRIS, **kw: Any):
    kw.setdefault("path", "")
    kw.setdefault("request_id", None)
    return decode(protocol, body(request), body(response), mapping=mapping, **kw)


def fails(protocol: str, request: Any, response: Any, mapping: Mapping = IRIS, **kw: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        if isinstance(request, bytes | str):
            req = request.encode() if isinstance(request, str) else request
            kw.setdefault("path", "")
            kw.setdefault("request_id", None)
            decode(protocol, req, body(response), mapping=mapping, **kw)
        else:
            run(protocol, request, response, mapping, **kw)
    assert info.value.protocol == protocol
    assert str(info.value).startswith(f"{protocol}: {info.value.location}: ")
    return str(info.value)


def tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


# -- Open Inference Protocol v2 ------------------------------------------------------------------

# the KServe v2 sklearn iris example
IRIS_V2_REQUEST = {
    "inputs": [
        tensor("input-0", [2, 4], "FP32", [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]),
    ]
}
IRIS_V2_RESPONSE = {
    "model_name": "sklearn-iris",
    "model_version": None,
    "id": "823248cc-d770-4a51-9606-16803395569c",
    "parameters": None,
    "outputs": [tensor("output-0", [2], "INT64", [1, 1])],
}


def test_oip_iris_batch_gives_one_record_per_row():
    out = run("oip-v2", IRIS_V2_REQUEST, IRIS_V2_RESPONSE, request_id="req-7")
    body_id = IRIS_V2_RESPONSE["id"]  # the client knows it too: each row keeps it as an alias
    assert [r.pop("aliases") for r in out] == [[f"{body_id}-0"], [f"{body_id}-1"]]
    assert out == [
        {
            "id": "req-7-0",
            "features": {
                "sepal_length": 6.8,
                "sepal_width": 2.8,
                "petal_length": 4.8,
                "petal_width": 1.4,
            },
            "prediction": 1,
        },
        {
            "id": "req-7-1",
            "features": {
                "sepal_length": 6.0,
                "sepal_width": 3.4,
                "petal_length": 4.5,
                "petal_width": 1.6,
            },
            "prediction": 1,
        },
    ]


def test_oip_single_row_keeps_the_plain_id():
    request = {"id": "42", "inputs": [tensor("input-0", [1, 4], "FP32", [[6.8, 2.8, 4.8, 1.4]])]}
    response = {
        "model_name": "sklearn-iris",
        "id": "42",
        "outputs": [tensor("o", [1], "INT64", [2])],
    }
    [record] = run("oip-v2", request, response)
    assert record["id"] == "42"
    assert record["prediction"] == 2
    assert record["features"]["petal_width"] == 1.4


def test_oip_request_id_argument_wins_over_body_ids_and_response_id_is_a_fallback():
    assert run("oip-v2", IRIS_V2_REQUEST, IRIS_V2_RESPONSE)[1]["id"] == (
        "823248cc-d770-4a51-9606-16803395569c-1"
    )
    request = {**IRIS_V2_REQUEST, "id": "from-request"}
    assert run("oip-v2", request, IRIS_V2_RESPONSE)[0]["id"] == "from-request-0"
    assert run("oip-v2", request, IRIS_V2_RESPONSE, request_id="hdr")[0]["id"] == "hdr-0"


def test_every_id_the_client_knows_is_the_id_or_an_alias():
    request = {**IRIS_V2_REQUEST, "id": "from-request"}
    response_id = IRIS_V2_RESPONSE["id"]
    [first, second] = run("oip-v2", request, IRIS_V2_RESPONSE, request_id="hdr", echoed_id="gen")
    assert first["id"] == "hdr-0"
    assert first["aliases"] == ["from-request-0", f"{response_id}-0", "gen-0"]
    assert second["aliases"][-1] == "gen-1"
    # an id given twice is given once; a made-up id comes after the body's ids
    same = {**IRIS_V2_RESPONSE, "id": "from-request"}
    [record, _] = run("oip-v2", request, same, echoed_id="gen")
    assert (record["id"], record["aliases"]) == ("from-request-0", ["gen-0"])
    # with only the made-up id, it is the id
    bare = {k: v for k, v in IRIS_V2_RESPONSE.items() if k != "id"}
    [record, _] = run("oip-v2", IRIS_V2_REQUEST, bare, echoed_id="gen")
    assert record["id"] == "gen-0" and "aliases" not in record


def test_without_any_id_the_digest_of_the_exchange_is_stable():
    response = {k: v for k, v in IRIS_V2_RESPONSE.items() if k != "id"}
    first = run("oip-v2", IRIS_V2_REQUEST, response)
    assert [r["id"] for r in first] == [r["id"] for r in run("oip-v2", IRIS_V2_REQUEST, response)]
    assert first[0]["id"].endswith("-0") and len(first[0]["id"]) == 18
    other = {"inputs": [tensor("input-0", [2, 4], "FP32", [0.0] * 8)]}
    assert run("oip-v2", other, response)[0]["id"] != first[0]["id"]


def test_oip_nested_and_flat_data_decode_the_same():
    nested = {
        "inputs": [tensor("input-0", [2, 4], "FP32", [[6.8, 2.8, 4.8, 1.4], [6, 3.4, 4.5, 1.6]])]
    }
    response = {"outputs": [tensor("output-0", [2, 1], "INT64", [[1], [1]])]}
    flat = run("oip-v2", IRIS_V2_REQUEST, {**IRIS_V2_RESPONSE, "id": None}, request_id="r")
    assert run("oip-v2", nested, response, request_id="r") == flat


def test_oip_fp_values_are_floats_and_ints_stay_ints():
    request = {"inputs": [tensor("x", [1, 2], "FP64", [1, 2])]}
    response = {"outputs": [tensor("y", [1], "UINT8", [255])]}
    [record] = run("oip-v2", request, response, Mapping(features=("a", "b")))
    assert record["features"] == {"a": 1.0, "b": 2.0}
    assert type(record["features"]["a"]) is float
    assert record["prediction"] == 255 and type(record["prediction"]) is int


def test_triton_named_tensors_one_per_feature():
    request = {
        "id": "t1",
        "inputs": [
            tensor("age", [3], "INT32", [31, 45, 27]),
            tensor("income", [3, 1], "FP32", [[1000.5], [2000.0], [0.0]]),
            tensor("region", [3], "BYTES", ["north", "south", "east"]),
            tensor("member", [3, 1], "BOOL", [True, False, True]),
            tensor("debug_mask", [3, 2], "BOOL", [True] * 6),  # not a feature: ignored
        ],
    }
    response = {
        "model_name": "credit",
        "outputs": [
            tensor("label", [3], "BYTES", ["approve", "deny", "approve"]),
            tensor("probability", [3, 1], "FP32", [0.9, 0.2, 0.7]),
        ],
    }
    mapping = Mapping(features=("age", "income", "region", "member"), score="probability")
    out = run("oip-v2", request, response, mapping)
    assert [r["id"] for r in out] == ["t1-0", "t1-1", "t1-2"]
    assert out[1] == {
        "id": "t1-1",
        "features": {"age": 45, "income": 2000.0, "region": "south", "member": False},
        "prediction": "deny",
        "score": pytest.approx(0.2),
    }


def test_oip_feature_absent_from_the_request_is_missing_not_an_error():
    request = {"inputs": [tensor("age", [1], "INT64", [31])]}
    response = {"outputs": [tensor("y", [1], "INT64", [0])]}
    [record] = run("oip-v2", request, response, Mapping(features=("age", "income")))
    assert record["features"] == {"age": 31}


def test_oip_without_feature_names_every_input_is_a_feature():
    request = {"inputs": [tensor("a", [2], "FP32", [1, 2]), tensor("b", [2], "BYTES", ["x", "y"])]}
    response = {"outputs": [tensor("y", [2], "INT64", [0, 1])]}
    out = run("oip-v2", request, response, Mapping(features=()))
    assert [r["features"] for r in out] == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]


def test_oip_probability_output_argmax_and_score_index():
    response = {
        "outputs": [tensor("predict_proba", [2, 3], "FP64", [0.1, 0.7, 0.2, 0.8, 0.15, 0.05])]
    }
    mapping = Mapping(features=IRIS.features, score_index=1)
    out = run("oip-v2", IRIS_V2_REQUEST, response, mapping)
    assert [(r["prediction"], r["score"]) for r in out] == [(1, 0.7), (0, 0.15)]
    labelled = Mapping(features=IRIS.features, classes=("setosa", "versicolor", "virginica"))
    out = run("oip-v2", IRIS_V2_REQUEST, response, labelled)
    assert [r["prediction"] for r in out] == ["versicolor", "setosa"]
    assert "score" not in out[0]


def test_a_multiclass_probability_output_is_every_classs_score():
    """A model with `schema.scores`: the probability vector becomes the record's `scores` by
    class (in the schema's order) and the prediction its most probable class; decoded by the
    model's schema into the class-score columns."""
    classes = ("setosa", "versicolor", "virginica")
    mapping = Mapping(features=IRIS.features, classes=classes, per_class=True)
    proba = tensor("predict_proba", [2, 3], "FP64", [0.1, 0.7, 0.2, 0.8, 0.15, 0.05])
    out = run("oip-v2", IRIS_V2_REQUEST, {"outputs": [proba]}, mapping)
    assert [(r["prediction"], r["scores"]) for r in out] == [
        ("versicolor", {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2}),
        ("setosa", {"setosa": 0.8, "versicolor": 0.15, "virginica": 0.05}),
    ]
    assert "score" not in out[0]
    named = {
        "outputs": [proba, tensor("predict", [2], "BYTES", ["virginica", "setosa"])],
    }
    both = Mapping(
        features=IRIS.features, classes=classes, per_class=True, prediction="predict",
        score="predict_proba",
    )  # fmt: skip
    out = run("oip-v2", IRIS_V2_REQUEST, named, both)
    assert [r["prediction"] for r in out] == ["virginica", "setosa"]
    assert out[1]["scores"]["versicolor"] == 0.15
    v1 = run(
        "kserve-v1",
        {"instances": [[1.0, 2.0, 3.0, 4.0]]},
        {"predictions": [[0.2, 0.5, 0.3]]},
        mapping,
    )
    assert v1[0]["scores"] == {"setosa": 0.2, "versicolor": 0.5, "virginica": 0.3}
    schema = ModelSchema(
        SchemaConfig(
            numeric=IRIS.features, prediction="species", label="label",
            scores={c: f"p_{c}" for c in classes},
        )
    )  # fmt: skip
    decoded = decode_records(body(out), "application/json", schema, now=0)
    row = decoded.rows[1]
    assert [row[schema.index[f"p_{c}"]] for c in classes] == [0.8, 0.15, 0.05]
    with pytest.raises(ValueError, match="per_class needs the classes"):
        Mapping(features=IRIS.features, per_class=True)
    assert "3 class scores, but mapping.classes names 2" in fails(
        "oip-v2", IRIS_V2_REQUEST, {"outputs": [proba]},
        Mapping(features=IRIS.features, classes=("a", "b"), per_class=True),
    )  # fmt: skip


def test_mlserver_named_prediction_and_2d_score_outputs():
    response = {
        "model_name": "income",
        "outputs": [
            tensor("predict_proba", [2, 2], "FP64", [[0.3, 0.7], [0.9, 0.1]]),
            tensor("predict", [2], "INT64", [1, 0]),
        ],
    }
    mapping = Mapping(
        features=IRIS.features, prediction="predict", score="predict_proba", score_index=1
    )
    out = run("oip-v2", IRIS_V2_REQUEST, response, mapping)
    assert [(r["prediction"], r["score"]) for r in out] == [(1, 0.7), (0, 0.1)]


def test_oip_mapping_input_picks_the_positional_tensor():
    request = {
        "inputs": [
            tensor("attention", [1, 3], "INT64", [1, 1, 1]),
            tensor("dense", [1, 2], "FP32", [0.5, 1.5]),
        ]
    }
    response = {"outputs": [tensor("y", [1, 1], "FP32", [[3.25]])]}
    [record] = run("oip-v2", request, response, Mapping(features=("u", "v"), input="dense"))
    assert record["features"] == {"u": 0.5, "v": 1.5}
    assert record["prediction"] == 3.25


def test_oip_empty_batch_gives_no_records():
    request = {"inputs": [tensor("x", [0, 4], "FP32", [])]}
    response = {"outputs": [tensor("y", [0], "INT64", [])]}
    assert run("oip-v2", request, response) == []


@pytest.mark.parametrize(
    ("request_", "response", "mapping", "expected"),
    [
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("output-0", [2, 2], "FP32", [1, 2, 3, 4, 5, 6])]},
            IRIS,
            "oip-v2: outputs[0].data: 6 values do not fit shape [2, 2]",
        ),
        (
            {"inputs": [tensor("input-0", [2, 4], "FP32", [1.0] * 7)]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0].data: 7 values do not fit shape [2, 4]",
        ),
        (
            {"inputs": [tensor("input-0", [1, 4], "FLOAT32", [1.0] * 4)]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0].datatype: unknown datatype 'FLOAT32'",
        ),
        (IRIS_V2_REQUEST, {"model_name": "m"}, IRIS, "oip-v2: response: expected an object with"),
        (IRIS_V2_REQUEST, {"outputs": []}, IRIS, "oip-v2: outputs: expected a non-empty list"),
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("output-0", [3], "INT64", [1, 1, 0])]},
            IRIS,
            "oip-v2: outputs[0]: 3 predictions for 2 request rows",
        ),
        (
            {"inputs": [tensor("input-0", [1, 3], "FP32", [1.0] * 3)]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0]: shape [1, 3] has 3 values per row, but mapping.features names 4",
        ),
        (
            {"inputs": [tensor("input-0", [4], "FP32", [1.0] * 4)]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0]: shape [4] has 1 values per row",
        ),
        (
            {"inputs": [tensor("x", [1], "INT8", [300])]},
            IRIS_V2_RESPONSE,
            Mapping(features=("x",)),
            "oip-v2: inputs[0].data: value 0 (row-major) is a number, not a valid INT8",
        ),
        (
            {"inputs": [tensor("x", [2], "FP32", [1.5, True])]},
            IRIS_V2_RESPONSE,
            Mapping(features=("x",)),
            "oip-v2: inputs[0].data: value 1 (row-major) is a boolean, not a valid FP32",
        ),
        (
            {"inputs": [tensor("x", [1], "BOOL", [1])]},
            IRIS_V2_RESPONSE,
            Mapping(features=("x",)),
            "oip-v2: inputs[0].data: value 0 (row-major) is a number, not a valid BOOL",
        ),
        (
            {"inputs": [tensor("x", [2], "FP32", [1, 2]), tensor("z", [3], "FP32", [1, 2, 3])]},
            IRIS_V2_RESPONSE,
            Mapping(features=("x", "z")),
            "oip-v2: inputs[1]: 3 rows, but input 'x' has 2",
        ),
        (
            {"inputs": [tensor("x", [2, 3], "FP32", [1.0] * 6)]},
            IRIS_V2_RESPONSE,
            Mapping(features=("x",)),
            "oip-v2: inputs[0]: shape [2, 3] is not one value per row",
        ),
        (
            {"inputs": [tensor("a", [2], "FP32", [1, 2]), tensor("b", [2], "FP32", [1, 2])]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs: 2 inputs and none is named after a feature; set mapping.input",
        ),
        (
            IRIS_V2_REQUEST,
            IRIS_V2_RESPONSE,
            Mapping(features=IRIS.features, prediction="label"),
            "oip-v2: outputs: no tensor named 'label' (have: 'output-0')",
        ),
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("p", [2, 2], "FP32", [0.5] * 4)]},
            Mapping(features=IRIS.features, score="p"),
            "oip-v2: outputs[0].data[0]: a list of 2 values as score; set mapping.score_index",
        ),
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("p", [2, 2], "FP32", [0.5] * 4)]},
            Mapping(features=IRIS.features, score_index=2),
            "oip-v2: outputs[0].data[0]: score_index 2 is out of range for 2 class scores",
        ),
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("p", [2, 2], "BYTES", ["a", "b", "c", "d"])]},
            IRIS,
            "oip-v2: outputs[0].data[0]: a list prediction is read as class scores",
        ),
        (
            IRIS_V2_REQUEST,
            {"outputs": [tensor("p", [2, 2, 2], "FP32", [0.5] * 8)]},
            IRIS,
            "oip-v2: outputs[0]: shape [2, 2, 2] is neither [batch] nor [batch, n]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32"}]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0].data: is missing",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            },
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0]: binary_data_size without the Inference-Header-Content-Length",
        ),
        (
            {"inputs": [tensor("x", [1, -4], "FP32", [1.0] * 4)]},
            IRIS_V2_RESPONSE,
            IRIS,
            "oip-v2: inputs[0].shape: expected a list of non-negative int64 dimensions",
        ),
        (
            IRIS_V2_REQUEST,
            {"error": "Model with name sklearn-iris does not exist."},
            IRIS,
            "oip-v2: response: the model server returned an error: Model with name",
        ),
        ({"instances": [[1, 2, 3, 4]]}, IRIS_V2_RESPONSE, IRIS, "oip-v2: request: expected an"),
    ],
)
def test_oip_bad_payloads_name_protocol_and_location(request_, response, mapping, expected):
    assert fails("oip-v2", request_, response, mapping).startswith(expected)


@pytest.mark.parametrize("bad", [b"", b"not json", b'{"inputs": [', b"\xff\xfe"])
def test_non_json_bodies_are_protocol_errors(bad):
    message = fails("oip-v2", bad, IRIS_V2_RESPONSE)
    assert message.startswith("oip-v2: request: not valid JSON")
    with pytest.raises(ProtocolError, match=r"^oip-v2: response: not valid JSON"):
        decode("oip-v2", body(IRIS_V2_REQUEST), bad, path="", mapping=IRIS, request_id=None)


def test_too_deeply_nested_json_is_a_protocol_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    assert "nested too deeply" in fails("json", deep, 1)


@pytest.mark.parametrize(
    "path", ["/v2/models/iris/ready", "/v2/health/live", "/v2/models/iris", "/v2"]
)
def test_oip_refuses_non_inference_paths_of_its_api(path):
    message = fails("oip-v2", IRIS_V2_REQUEST, IRIS_V2_RESPONSE, path=path)
    assert message.endswith("is not an inference call")


# -- KServe / TF-Serving v1 ---------------------------------------------------------------------


def test_tf_serving_instances_by_position():
    request = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    out = run("kserve-v1", request, {"predictions": [1, 1]}, request_id="abc")
    assert [r["id"] for r in out] == ["abc-0", "abc-1"]
    assert out[1]["features"] == {
        "sepal_length": 6.0,
        "sepal_width": 3.4,
        "petal_length": 4.5,
        "petal_width": 1.6,
    }
    assert [r["prediction"] for r in out] == [1, 1]


def test_v1_instances_as_objects_with_class_probabilities():
    request = {
        "instances": [
            {"age": 30, "region": "north", "extra": [1, 2]},
            {"age": 41, "region": None},
        ]
    }
    response = {"predictions": [[0.2, 0.8], [0.6, 0.4]]}
    mapping = Mapping(features=("age", "region", "income"), score_index=1, classes=("no", "yes"))
    out = run("kserve-v1", request, response, mapping, request_id="r")
    assert out == [
        {
            "id": "r-0",
            "features": {"age": 30, "region": "north"},
            "prediction": "yes",
            "score": 0.8,
        },
        {"id": "r-1", "features": {"age": 41, "region": None}, "prediction": "no", "score": 0.4},
    ]


def test_v1_single_element_prediction_lists_are_scalars():
    request = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
    [record] = run("kserve-v1", request, {"predictions": [[0.73]]}, request_id="r")
    assert record == {
        "id": "r",
        "features": dict(zip(IRIS.features, [1.0, 2.0, 3.0, 4.0], strict=True)),
        "prediction": 0.73,
    }


def test_v1_scalar_instances_for_a_single_feature_model():
    out = run(
        "kserve-v1", {"instances": [1.5, [2.5]]}, {"predictions": [3, 5]}, Mapping(features=("x",))
    )
    assert [r["features"] for r in out] == [{"x": 1.5}, {"x": 2.5}]


def test_tf_serving_columnar_inputs_and_outputs():
    request = {"inputs": {"age": [30, 41], "region": ["north", "south"], "income": [[1.0], [2.0]]}}
    response = {"outputs": {"classes": ["a", "b"], "scores": [0.9, 0.6]}}
    mapping = Mapping(features=("age", "region", "income"), prediction="classes", score="scores")
    out = run("kserve-v1", request, response, mapping, request_id="c")
    assert out == [
        {
            "id": "c-0",
            "features": {"age": 30, "region": "north", "income": 1.0},
            "prediction": "a",
            "score": 0.9,
        },
        {
            "id": "c-1",
            "features": {"age": 41, "region": "south", "income": 2.0},
            "prediction": "b",
            "score": 0.6,
        },
    ]


def test_tf_serving_columnar_single_unnamed_input_and_unbatched_columns():
    request = {"inputs": {"dense_input": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}}
    out = run("kserve-v1", request, {"outputs": [[0.1, 0.9], [0.8, 0.2]]})
    assert [r["prediction"] for r in out] == [1, 0]
    assert out[0]["features"]["sepal_length"] == 6.8
    one = run(
        "kserve-v1", {"inputs": {"x": 1.0, "y": "b"}}, {"outputs": 7}, Mapping(features=("x", "y"))
    )
    assert one[0]["features"] == {"x": 1.0, "y": "b"} and one[0]["prediction"] == 7


def test_v1_named_output_objects():
    response = {
        "predictions": [
            {"label": "cat", "probs": [0.1, 0.9]},
            {"label": "dog", "probs": [0.7, 0.3]},
        ]
    }
    mapping = Mapping(features=("x",), prediction="label", score="probs", score_index=1)
    out = run("kserve-v1", {"instances": [1, 2]}, response, mapping)
    assert [(r["prediction"], r["score"]) for r in out] == [("cat", 0.9), ("dog", 0.3)]
    only = run(
        "kserve-v1", {"instances": [1]}, {"predictions": [{"y": 4}]}, Mapping(features=("x",))
    )
    assert only[0]["prediction"] == 4


@pytest.mark.parametrize(
    ("request_", "response", "mapping", "expected"),
    [
        (
            {"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]},
            {"predictions": [1]},
            IRIS,
            "kserve-v1: request: expected exactly one of 'instances', 'inputs'; "
            "found 'instances', 'inputs'",
        ),
        (
            {"data": [[1, 2]]},
            {"predictions": [1]},
            IRIS,
            "kserve-v1: request: expected exactly one",
        ),
        (
            {"instances": [[1, 2, 3, 4], [1, 2, 3, 4]]},
            {"predictions": [1]},
            IRIS,
            "kserve-v1: predictions: 1 predictions for 2 request rows",
        ),
        (
            {"instances": [[1, 2, 3, 4], [1, 2, 3]]},
            {"predictions": [1, 2]},
            IRIS,
            "kserve-v1: instances[1]: 3 values, but mapping.features names 4",
        ),
        (
            {"instances": [[1, 2, {"a": 1}, 4]]},
            {"predictions": [1]},
            IRIS,
            "kserve-v1: instances[0][2]: expected one feature value, got an object",
        ),
        (
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [{"a": 1, "b": 2}]},
            IRIS,
            "kserve-v1: predictions[0]: an object with keys a, b; set mapping.prediction",
        ),
        (
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [{"a": 1}]},
            Mapping(features=IRIS.features, prediction="label"),
            "kserve-v1: predictions[0]: no key 'label' (keys: a)",
        ),
        (
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[]]},
            IRIS,
            "kserve-v1: predictions[0]: expected a prediction, got an empty list",
        ),
        (
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[0.1, 0.9]]},
            Mapping(features=IRIS.features, classes=("a", "b", "c")),
            "kserve-v1: predictions[0]: 2 class scores, but mapping.classes names 3",
        ),
        (
            {"inputs": {"sepal_length": [1, 2], "sepal_width": [1]}},
            {"outputs": [1, 2]},
            IRIS,
            "kserve-v1: inputs.sepal_width: 1 rows, but 'sepal_length' has 2",
        ),
        (
            {"instances": [[1, 2, 3, 4]]},
            {"explanations": []},
            IRIS,
            "kserve-v1: response: expected an object with 'predictions' or 'outputs'",
        ),
        (
            {"instances": {"a": 1}},
            {"predictions": [1]},
            IRIS,
            "kserve-v1: instances: expected a list",
        ),
    ],
)
def test_v1_bad_payloads(request_, response, mapping, expected):
    assert fails("kserve-v1", request_, response, mapping).startswith(expected)


def test_v1_refuses_explain_but_accepts_custom_routes():
    request, response = {"instances": [[1, 2, 3, 4]]}, {"predictions": [0]}
    message = fails("kserve-v1", request, response, path="/v1/models/iris:explain")
    assert message == "kserve-v1: path: '/v1/models/iris:explain' is not an inference call"
    assert run("kserve-v1", request, response, path="/gateway/iris/predict")[0]["prediction"] == 0
    assert run("kserve-v1", request, response, path="/v1/models/iris/versions/2:predict")


# -- MLflow scoring server ----------------------------------------------------------------------


def test_mlflow_dataframe_split():
    request = {
        "dataframe_split": {
            "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width", "note"],
            "index": [10, 11],
            "data": [[5.1, 3.5, 1.4, 0.2, "a"], [6.2, 3.4, 5.4, 2.3, "b"]],
        }
    }
    out = run("mlflow", request, {"predictions": [0, 2]}, request_id="m")
    assert [r["id"] for r in out] == ["m-0", "m-1"]
    assert out[1]["features"] == {
        "sepal_length": 6.2,
        "sepal_width": 3.4,
        "petal_length": 5.4,
        "petal_width": 2.3,
    }
    assert [r["prediction"] for r in out] == [0, 2]


def test_mlflow_dataframe_split_without_columns_is_positional():
    request = {"dataframe_split": {"data": [[5.1, 3.5, 1.4, 0.2]]}}
    [record] = run("mlflow", request, {"predictions": [0]}, request_id="m")
    assert record["id"] == "m" and record["features"]["petal_width"] == 0.2


def test_mlflow_dataframe_records_with_bare_list_response():
    request = {
        "dataframe_records": [
            {"age": 30, "region": "north"},
            {"age": 41, "region": "south", "unused": {"nested": True}},
        ]
    }
    out = run("mlflow", request, [0.25, 0.75], Mapping(features=("age", "region")), request_id="r")
    assert [(r["features"], r["prediction"]) for r in out] == [
        ({"age": 30, "region": "north"}, 0.25),
        ({"age": 41, "region": "south"}, 0.75),
    ]


def test_mlflow_dataframe_predictions_with_named_columns():
    request = {"dataframe_records": [{"x": 1}, {"x": 2}]}
    response = {
        "predictions": [
            {"predicted_label": "spam", "probability": 0.93},
            {"predicted_label": "ham", "probability": 0.12},
        ]
    }
    mapping = Mapping(features=("x",), prediction="predicted_label", score="probability")
    out = run("mlflow", request, response, mapping)
    assert [(r["prediction"], r["score"]) for r in out] == [("spam", 0.93), ("ham", 0.12)]


def test_mlflow_columnar_predictions_are_transposed():
    request = {"inputs": {"x": [1, 2]}}
    response = {"predictions": {"label": [1, 0], "proba": [0.8, 0.3]}}
    mapping = Mapping(features=("x",), prediction="label", score="proba")
    out = run("mlflow", request, response, mapping)
    assert [(r["features"], r["prediction"], r["score"]) for r in out] == [
        ({"x": 1}, 1, 0.8),
        ({"x": 2}, 0, 0.3),
    ]


def test_mlflow_tensor_inputs_and_instances():
    out = run(
        "mlflow", {"instances": [[1, 2, 3, 4]]}, {"predictions": [[0.2, 0.8]]}, request_id="i"
    )
    assert out[0]["prediction"] == 1
    out = run("mlflow", {"inputs": [[1, 2, 3, 4]], "params": {"k": 1}}, {"predictions": [3]})
    assert out[0]["prediction"] == 3


def test_mlflow_1x_bodies():
    legacy_split = {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}
    out = run("mlflow", legacy_split, [1, 0], Mapping(features=("a", "b")))
    assert [r["features"] for r in out] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    legacy_records = [{"a": 1, "b": "x"}]
    assert run("mlflow", legacy_records, [1], Mapping(features=("a", "b")))[0]["prediction"] == 1


@pytest.mark.parametrize(
    ("request_", "response", "expected"),
    [
        (
            {"dataframe_split": {"columns": ["a"], "data": [[1]]}, "instances": [[1]]},
            {"predictions": [1]},
            "mlflow: request: expected exactly one of 'dataframe_split', 'dataframe_records', "
            "'instances', 'inputs'; found 'dataframe_split', 'instances'",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}},
            {"predictions": [1, 2]},
            "mlflow: dataframe_split.data[1]: expected a list of 2 values (one per column)",
        ),
        (
            {"dataframe_split": {"columns": "a,b", "data": [[1, 2]]}},
            {"predictions": [1]},
            "mlflow: dataframe_split.columns: expected a list of column names",
        ),
        (
            {"dataframe_records": [{"a": 1}, 7]},
            {"predictions": [1, 2]},
            "mlflow: dataframe_records[1]: expected an object, got a number",
        ),
        (
            {"dataframe_records": [{"a": 1}, {"a": 2}]},
            {"predictions": [1, 2, 3]},
            "mlflow: predictions: 3 predictions for 2 request rows",
        ),
        (
            {"dataframe_records": [{"a": 1}]},
            {"error_code": "BAD_REQUEST", "message": "Failed to parse input"},
            "mlflow: response: the model server returned an error: Failed to parse input",
        ),
    ],
)
def test_mlflow_bad_payloads(request_, response, expected):
    assert fails("mlflow", request_, response, Mapping(features=("a", "b"))).startswith(expected)


# -- plain JSON ---------------------------------------------------------------------------------


def test_json_single_row_request_and_object_response():
    mapping = Mapping(features=("age", "region"), prediction="decision", score="confidence")
    request = {"id": "loan-9", "age": 30, "region": "north", "name": "ignored"}
    response = {"decision": "approve", "confidence": 0.81}
    assert run("json", request, response, mapping) == [
        {
            "id": "loan-9",
            "features": {"age": 30, "region": "north"},
            "prediction": "approve",
            "score": 0.81,
        }
    ]


def test_json_records_with_row_ids_features_path_and_mapped_response_paths():
    mapping = Mapping(
        features=("age", "region"),
        records_path="batch.items",
        features_path="attrs",
        prediction_path="results.label",
        score_path="results.p",
    )
    request = {
        "batch": {
            "items": [
                {"id": "a1", "attrs": {"age": 30, "region": "north"}},
                {"attrs": {"age": 50, "region": "west"}},
            ]
        }
    }
    response = {"results": [{"label": 1, "p": 0.9}, {"label": 0, "p": 0.2}]}
    out = run("json", request, response, mapping, request_id="req")
    assert out == [
        {"id": "a1", "features": {"age": 30, "region": "north"}, "prediction": 1, "score": 0.9},
        {"id": "req-1", "features": {"age": 50, "region": "west"}, "prediction": 0, "score": 0.2},
    ]


def test_json_top_level_list_of_positional_rows_and_bare_predictions():
    mapping = Mapping(features=("x", "y"), records_path="")
    out = run("json", [[1, 2], [3, 4]], [10, 20], mapping, request_id="r")
    assert [(r["id"], r["features"], r["prediction"]) for r in out] == [
        ("r-0", {"x": 1, "y": 2}, 10),
        ("r-1", {"x": 3, "y": 4}, 20),
    ]


def test_json_single_row_class_scores_and_indexed_path():
    mapping = Mapping(features=("x",), prediction_path="out.0.probs", score_index=0)
    [record] = run("json", {"x": 1}, {"out": [{"probs": [0.6, 0.4]}]}, mapping, request_id="r")
    assert (record["prediction"], record["score"]) == (0, 0.6)


@pytest.mark.parametrize(
    ("mapping", "request_", "response", "expected"),
    [
        (
            Mapping(features=("x",), records_path="rows"),
            {"data": []},
            [1],
            "json: request: no key 'rows'",
        ),
        (
            Mapping(features=("x",), records_path="rows", prediction_path="preds"),
            {"rows": [{"x": 1}, {"x": 2}]},
            {"preds": [1, 2, 3]},
            "json: preds: 3 values for 2 request rows",
        ),
        (
            Mapping(features=("x",), records_path="rows", prediction_path="preds"),
            {"rows": [{"x": 1}, {"x": 2}]},
            {"preds": 1},
            "json: preds: expected a list of 2 values (one per row), got a number",
        ),
        (
            Mapping(features=("x",), prediction_path="preds.5"),
            {"x": 1},
            {"preds": [1]},
            "json: preds: index 5 is out of range for a list of 1 values",
        ),
        (
            Mapping(features=("x",), prediction_path="p.q"),
            {"x": 1},
            {"p": "s"},
            "json: p: cannot take 'q' of a string",
        ),
        (
            Mapping(features=("x",), score_path="s"),
            {"x": 1},
            {"s": "high"},
            "json: s: expected a number, got a string",
        ),
    ],
)
def test_json_bad_payloads(mapping, request_, response, expected):
    assert fails("json", request_, response, mapping) == expected


# -- registry, detection, contract --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/v2/models/sklearn-iris/infer", "oip-v2"),
        ("/v2/models/iris/versions/3/infer", "oip-v2"),
        ("/serving/v2/models/iris/infer/", "oip-v2"),
        ("/v1/models/sklearn-iris:predict", "kserve-v1"),
        ("/v1/models/half_plus_two/versions/1:predict", "kserve-v1"),
        ("/v1/models/iris%3Apredict?debug=1", "kserve-v1"),
        ("/invocations", "mlflow"),
        ("/v1/models/iris:explain", None),
        ("/v2/models/iris/ready", None),
        ("/v2/models/iris/infer/extra", None),
        ("/predict", None),
        ("", None),
    ],
)
def test_detect(path, protocol):
    assert detect(path) == protocol


def test_registry_and_unknown_protocol():
    assert set(PROTOCOLS) == {"oip-v2", "kserve-v1", "mlflow", "json", "seldon", "oip-v2-grpc"}
    assert all(d.name == alias for alias, d in PROTOCOLS.items())
    with pytest.raises(UnknownAliasError, match="unknown protocol 'grpc'; known: json, "):
        decode("grpc", b"{}", b"{}", path="", mapping=IRIS, request_id=None)


def test_protocol_error_is_a_payload_error_with_parts():
    with pytest.raises(PayloadError) as info:
        run("kserve-v1", {"instances": [[1, 2, 3, 4]]}, {"predictions": [1, 2]})
    err = info.value
    assert isinstance(err, ProtocolError)
    assert (err.protocol, err.location) == ("kserve-v1", "predictions")
    assert err.reason == "2 predictions for 1 request rows"


def test_mapping_validation():
    with pytest.raises(ValueError, match="score_index"):
        Mapping(features=("a",), score_index=-1)
    with pytest.raises(ValueError, match="repeated: a"):
        Mapping(features=("a", "b", "a"))


def test_records_pass_the_push_collectors_schema_validation():
    schema = ModelSchema(
        SchemaConfig(
            numeric=("age", "income"), categorical=("region",), prediction="label", score="score"
        )
    )
    request = {
        "inputs": [
            tensor("age", [2], "INT64", [31, 45]),
            tensor("income", [2], "FP32", [1000.5, 2000.0]),
            tensor("region", [2], "BYTES", ["north", "south"]),
        ]
    }
    response = {"outputs": [tensor("proba", [2, 2], "FP32", [0.3, 0.7, 0.9, 0.1])]}
    mapping = Mapping(features=("age", "income", "region"), score_index=1)
    records = run("oip-v2", request, response, mapping, request_id="x")
    decoded = decode_records(msgspec.json.encode(records), "application/json", schema, now=1.0)
    assert not decoded.errors
    assert decoded.ids == ["x-0", "x-1"]
    assert decoded.rows == [(31.0, 1000.5, "north", 1, 0.7), (45.0, 2000.0, "south", 0, 0.1)]


def test_oip_scalar_tensor_and_null_scores():
    request = {"inputs": [tensor("x", [], "FP32", 2.5)]}
    response = {"outputs": [tensor("y", [1], "INT64", [1]), tensor("s", [1], "FP32", [0.5])]}
    [record] = run("oip-v2", request, response, Mapping(features=("x",), score="s"))
    assert record["features"] == {"x": 2.5} and record["score"] == 0.5
    mapping = Mapping(features=("x",), prediction_path="p", score_path="s")
    plain = run("json", {"x": 1}, {"p": 1, "s": None}, mapping)
    assert "score" not in plain[0]


def test_oip_score_tensor_row_count_must_match():
    response = {"outputs": [tensor("y", [2], "INT64", [1, 0]), tensor("s", [1], "FP32", [0.5])]}
    mapping = Mapping(features=IRIS.features, score="s")
    message = fails("oip-v2", IRIS_V2_REQUEST, response, mapping)
    assert message == "oip-v2: outputs[1]: 1 scores for 2 request rows"


def test_v1_instance_object_with_one_unnamed_input_is_positional():
    request = {"instances": [{"dense_input": [6.8, 2.8, 4.8, 1.4]}]}
    [record] = run("kserve-v1", request, {"predictions": [2]})
    assert record["features"]["petal_length"] == 4.8


def test_v1_columnar_without_feature_names_takes_scalar_columns():
    request = {"inputs": {"id": ["r1", "r2"], "a": [1, 2], "emb": [[0.1, 0.2], [0.3, 0.4]]}}
    out = run("kserve-v1", request, {"outputs": [0, 1]}, Mapping(features=()))
    assert [r["features"] for r in out] == [{"a": 1}, {"a": 2}]


def test_v1_columnar_scalar_among_batched_inputs_is_an_error():
    request = {"inputs": {"a": [1, 2], "b": 3}}
    message = fails("kserve-v1", request, {"outputs": [0, 1]}, Mapping(features=("a", "b")))
    assert message == "kserve-v1: inputs.b: a number among batched lists"


def test_named_outputs_missing_the_score_key():
    mapping = Mapping(features=("x",), prediction="label", score="prob")
    message = fails("mlflow", {"instances": [1]}, {"predictions": [{"label": 1}]}, mapping)
    assert message == "mlflow: predictions[0]: no key 'prob' (keys: label)"


def test_integer_ids_become_strings():
    mapping = Mapping(features=("x",), records_path="rows", prediction_path="preds")
    request = {"id": 900, "rows": [{"id": 17, "x": 1}, {"x": 2}]}
    out = run("json", request, {"preds": [1, 0]}, mapping)
    assert [r["id"] for r in out] == ["17", "900-1"]


def test_oip_positional_input_needs_feature_names():
    request = {"inputs": [tensor("x", [1, 2], "FP32", [1, 2])]}
    message = fails("oip-v2", request, IRIS_V2_RESPONSE, Mapping(features=(), input="x"))
    assert message.endswith("positional feature values need mapping.features to name them")


def test_integers_beyond_the_float_range_are_refused():
    huge = 10**400
    request = {"inputs": [tensor("x", [1], "FP64", [huge])]}
    message = fails("oip-v2", request, IRIS_V2_RESPONSE, Mapping(features=("x",)))
    assert message == "oip-v2: inputs[0].data: value 0 (row-major) is a number, not a valid FP64"
    mapping = Mapping(features=("x",), prediction_path="p", score_path="s")
    message = fails("json", {"x": huge}, {"p": 1, "s": huge}, mapping)
    assert message == "json: s: number is out of the float range"
    assert fails("json", {"x": 1}, [[1, huge]], Mapping(features=("x",))).startswith(
        "json: response[0][1]: number is out of the float range"
    )


def test_huge_batch_of_empty_rows_is_refused_without_building_it():
    request = {"inputs": [tensor("x", [10**12, 0], "FP32", [])]}
    message = fails("oip-v2", request, IRIS_V2_RESPONSE, Mapping(features=("a", "b")))
    assert message.endswith(
        "shape [1000000000000, 0] has 0 values per row, but mapping.features "
        "names 2; a positional input is [batch, n_features]"
    )
    response = {"outputs": [tensor("y", [10**12, 0], "FP32", [])]}
    message = fails("oip-v2", IRIS_V2_REQUEST, response)
    assert message == "oip-v2: outputs[0]: shape [1000000000000, 0] has no values per row"
    request = {"inputs": [tensor("x", [2**62] * 3 + [0], "FP32", [])]}
    message = fails("oip-v2", request, IRIS_V2_RESPONSE, Mapping(features=("a", "b")))
    assert "shape [4611686018427387904, 4611686018427387904, 4611686018427 ...] has" in message
    request = {"inputs": [tensor("x", [2**63, 0], "FP32", [])]}
    message = fails("oip-v2", request, IRIS_V2_RESPONSE, Mapping(features=("a", "b")))
    assert message == ("oip-v2: inputs[0].shape: expected a list of non-negative int64 dimensions")


# -- fuzzing ------------------------------------------------------------------------------------

MAPPINGS = [
    Mapping(features=()),
    Mapping(features=("a",)),
    Mapping(features=("a", "b"), score_index=1),
    Mapping(features=("a", "b", "x"), prediction="label", score="prob", classes=("n", "y")),
    Mapping(features=("a", "b"), input="input-0", prediction="output-0", score="p", score_index=0),
    Mapping(
        features=("a",),
        records_path="rows",
        features_path="x",
        prediction_path="results.label",
        score_path="results.prob",
        score_index=2,
    ),
    Mapping(features=("a", "b"), records_path="", prediction_path="predictions.0"),
]
KEYS = [
    "inputs", "outputs", "name", "shape", "datatype", "data", "id", "parameters",
    "binary_data_size", "instances", "predictions", "dataframe_split", "dataframe_records",
    "columns", "index", "rows", "results", "label", "prob", "p", "a", "b", "x", "error",
    "ndarray", "tensor", "names", "values", "jsonData", "status", "info",
]  # fmt: skip
NAMES = ["a", "b", "x", "input-0", "output-0", "p", "label", "prob"]
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.integers()
    | st.just(-(10**400))
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([*NAMES, *DATATYPES, "FP8"])
    | st.text(max_size=5)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=5)
    ),
    max_leaves=30,
)

OPTIONAL_NAME = st.none() | st.sampled_from([*NAMES, "predictions", "scores"])
OPTIONAL_PATH = st.none() | st.sampled_from(
    ["", "rows", "rows.0", "results.label", "results.prob", "predictions.0", "a.b", "0", "x.1.y"]
)
ANY_MAPPING = st.sampled_from(MAPPINGS) | st.builds(
    Mapping,
    features=st.lists(st.sampled_from(NAMES), unique=True, max_size=4).map(tuple),
    prediction=OPTIONAL_NAME,
    score=OPTIONAL_NAME,
    score_index=st.none() | st.integers(0, 3),
    id_field=st.sampled_from(["id", "a"]),
    classes=st.sampled_from([(), ("n", "y"), (0, 1, 2)]),
    input=OPTIONAL_NAME,
    records_path=OPTIONAL_PATH,
    features_path=OPTIONAL_PATH,
    prediction_path=OPTIONAL_PATH,
    score_path=OPTIONAL_PATH,
)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed tensors, sometimes with a wrong count, datatype or nesting."""
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    size = math.prod(shape) + draw(st.sampled_from([0, 0, 0, 1, -1]))
    data: Any = draw(st.lists(LEAVES, min_size=max(size, 0), max_size=max(size, 0)))
    if shape and len(data) == math.prod(shape) and draw(st.booleans()):
        width = math.prod(shape[1:])
        data = [data[i * width : (i + 1) * width] for i in range(shape[0])]
    doc = {
        "name": draw(st.sampled_from(NAMES)),
        "shape": shape,
        "datatype": draw(st.sampled_from([*DATATYPES, "FP8"])),
        "data": data,
    }
    if draw(st.integers(0, 9)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    return doc


OIP = st.fixed_dictionaries({"inputs": st.lists(tensors(), max_size=3)}) | st.fixed_dictionaries(
    {"outputs": st.lists(tensors(), max_size=3), "id": st.text(max_size=3) | st.integers()}
)


def check_records(records: list[dict[str, object]]) -> None:
    """What every decoder returns: push-shaped records of JSON scalars."""
    scalar = (str, int, float, bool, type(None))
    for record in records:
        assert set(record) <= {"id", "features", "prediction", "score", "aliases"}
        assert isinstance(record["id"], str) and record["id"]
        features = record["features"]
        assert isinstance(features, dict)
        assert all(isinstance(k, str) and isinstance(v, scalar) for k, v in features.items())
        assert isinstance(record["prediction"], scalar)
        assert isinstance(record.get("score", 0.0), float)
    msgspec.json.encode(records)


def decodes_or_protocol_error(
    protocol: str, request: bytes, response: bytes, mapping: Mapping, path: str = ""
):
    try:
        records = decode(protocol, request, response, path=path, mapping=mapping, request_id=None)
    except ProtocolError as exc:
        assert str(exc).startswith(f"{protocol}: ")
        return
    check_records(records)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(PROTOCOLS)),
    st.binary(max_size=200),
    st.binary(max_size=200),
    ANY_MAPPING,
    st.text(max_size=40),
)
def test_arbitrary_bytes_raise_only_protocol_errors(protocol, request, response, mapping, path):
    decodes_or_protocol_error(protocol, request, response, mapping, path)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(PROTOCOLS)), JSON, JSON, ANY_MAPPING)
def test_arbitrary_json_raises_only_protocol_errors(protocol, request, response, mapping):
    decodes_or_protocol_error(protocol, body(request), body(response), mapping)


@settings(max_examples=800, deadline=None)
@given(OIP, OIP, ANY_MAPPING)
def test_arbitrary_tensors_raise_only_protocol_errors(request, response, mapping):
    decodes_or_protocol_error("oip-v2", body(request), body(response), mapping)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda width: st.lists(
            st.lists(st.floats(-1e6, 1e6), min_size=width, max_size=width), min_size=1, max_size=5
        )
    ),
    st.booleans(),
)
def test_oip_positional_round_trip(rows, nested):
    names = tuple(f"f{i}" for i in range(len(rows[0])))
    flat = [v for row in rows for v in row]
    request = {"inputs": [tensor("x", [len(rows), len(names)], "FP64", rows if nested else flat)]}
    response = {"outputs": [tensor("y", [len(rows)], "INT64", list(range(len(rows))))]}
    out = run("oip-v2", request, response, Mapping(features=names), request_id="q")
    assert [r["features"] for r in out] == [dict(zip(names, row, strict=True)) for row in rows]
    assert [r["prediction"] for r in out] == list(range(len(rows)))
    assert [r["id"] for r in out] == (
        ["q"] if len(rows) == 1 else [f"q-{i}" for i in range(len(rows))]
    )


# -- Seldon Core's protocol ---------------------------------------------------------------------


def test_seldon_ndarray_and_tensor_forms_decode_alike():
    mapping = Mapping(features=("a", "b"), score_index=1)
    response = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.2, 0.8], [0.6, 0.4]]}}
    ndarray = {"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}}
    tensor = {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    out = run("seldon", ndarray, response, mapping, request_id="p")
    assert out == run("seldon", tensor, response, mapping, request_id="p")
    assert [(r["features"], r["prediction"], r["score"]) for r in out] == [
        ({"a": 1, "b": 2}, 1, 0.8),
        ({"a": 3, "b": 4}, 0, 0.4),
    ]
    # named outputs: the prediction and score columns by name
    named = {"data": {"names": ["label", "proba"], "ndarray": [["yes", 0.9], ["no", 0.2]]}}
    labelled = Mapping(features=("a", "b"), prediction="label", score="proba")
    assert [r["prediction"] for r in run("seldon", ndarray, named, labelled)] == ["yes", "no"]
    assert detect("/seldon/ns/iris/api/v1.0/predictions") == "seldon"


@pytest.mark.parametrize(
    ("req", "resp", "message"),
    [
        ({"jsonData": {"a": 1}}, {}, "seldon: jsonData: a SeldonMessage without tabular data"),
        (
            {"data": {"ndarray": [[1, 2]]}},
            {"status": {"code": 500, "info": "boom", "status": "FAILURE"}},
            "seldon: response: the model server returned an error: boom",
        ),
        ({"data": {"tensor": {"shape": [2, 2], "values": [1]}}}, {}, "1 values do not fit"),
        ({"data": {"names": "a", "ndarray": []}}, {}, "data.names: expected a list of strings"),
        ({"data": {"ndarray": [[1, 2]]}}, {"data": {"ndarray": []}}, "0 predictions for 1"),
    ],
)
def test_seldon_errors_are_located(req, resp, message):
    assert message in fails("seldon", req, resp, Mapping(features=("a", "b")))
