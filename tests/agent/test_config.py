from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aims_agent.agent.cli import main
from aims_agent.agent.preflight import load as load_config
from aims_agent.config import parse_config
from aims_agent.errors import ConfigError
from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV, base_config


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_valid_config_loads_and_resolves_paths(write_config, reference_csv):
    cfg = load_config(write_config())
    assert cfg.models[0].reference.path == reference_csv
    assert cfg.storage_url.startswith("sqlite:///") and cfg.storage_url.endswith("aims.db")
    assert len(cfg.fingerprint()) == 64


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["models"][0]["checks"][0].update(threshold=-1),
            "models[0].checks[0].threshold: must be > 0, got -1",
        ),
        (
            lambda c: c["models"][0]["checks"][0].update(schedule_seconds=0),
            "models[0].checks[0].schedule_seconds: must be > 0, got 0",
        ),
        (
            lambda c: c["models"][0]["window"].update(max_sample="many"),
            "models[0].window.max_sample: Input should be a valid integer",
        ),
        (lambda c: c["agent"].update(port=70000), "agent.port: must be <= 65535, got 70000"),
        (
            lambda c: c["agent"]["tokens"][0].update(env="not a var"),
            "agent.tokens[0].env: must be an environment variable name, got 'not a var'",
        ),
        (
            lambda c: c["agent"]["tokens"][0].update(value="inline-secret"),
            "agent.tokens[0].value: is not a known field",
        ),
        (
            lambda c: c["agent"].update(tokens=[]),
            "agent.tokens: give at least one token, or agent.oidc (access tokens)",
        ),
        (
            lambda c: c["agent"].update(oidc={"issuer": "ftp://x", "audience": "a"}),
            "agent.oidc.issuer",
        ),
        (
            lambda c: c["agent"].update(
                oidc={"issuer": "https://id.example", "audience": "a", "algorithms": ["HS256"]}
            ),
            "agent.oidc.algorithms[0]",
        ),
        (lambda c: c["models"][0].pop("version"), "models[0].version: is required"),
        (
            lambda c: c["models"][0]["checks"][0].update(kind="nope"),
            "models[0].checks[0]: Input tag 'nope' found using 'kind' does not match",
        ),
        (
            lambda c: c["models"][0]["checks"][0].update(warn=0.6, threshold=0.5),
            "models[0].checks[0].warn: must be < threshold (0.5), got 0.6",
        ),
        (
            lambda c: c["models"][0]["checks"][0].update(controls=["A.99.1"]),
            "models[0].checks[0].controls: unknown ISO/IEC 42001 control 'A.99.1'",
        ),
        (
            lambda c: c["models"][0]["checks"][0].update(columns={"zz": {"test": "ks"}}),
            "models[0].checks[0].columns.zz: not a column of the schema",
        ),
        (
            lambda c: c["models"][0]["reference"].update(path="/nonexistent/ref.csv"),
            "models[0].reference.path: file not found: /nonexistent/ref.csv",
        ),
        (
            lambda c: c["models"][0]["schema"].update(categorical=["x1"]),
            "models[0].schema: column names must be unique, repeated: x1",
        ),
    ],
)
def test_problems_name_the_yaml_path(tmp_path, reference_csv, mutate, expected):
    cfg = base_config(reference_csv, tmp_path / "ev")
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    problems = problems_of(path)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path, reference_csv):
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["checks"][0]["threshold"] = -1
    cfg["agent"]["port"] = -5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert len(problems_of(path)) == 2


def test_cli_validate_exit_codes(tmp_path, write_config, reference_csv, capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "writer-" + "w" * 20)  # validate checks the token variables
    monkeypatch.setenv(READ_TOKEN_ENV, "reader-" + "r" * 20)
    assert main(["validate", str(write_config())]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "model m1 1.0 (AIS-T): 4 features" in out

    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["checks"][0]["threshold"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(bad)]) == 2
    assert "models[0].checks[0].threshold: must be > 0, got -1" in capsys.readouterr().err


def test_cli_validate_unreadable_and_not_yaml(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("agent: [unclosed")
    assert main(["validate", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    assert main(["validate", str(scalar)]) == 2
    assert "config must be a mapping" in capsys.readouterr().err


def test_privacy_and_retention_rules(tmp_path, reference_csv):
    import pytest

    from aims_agent.config import parse_config
    from aims_agent.errors import ConfigError
    from tests.conftest import base_config

    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["privacy"] = {"hash": ["x1"], "key_env": "K"}
    with pytest.raises(ConfigError, match="only id and categorical"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["models"][0]["privacy"] = {"hash": ["id"]}
    with pytest.raises(ConfigError, match="key_env"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["models"][0]["privacy"] = {"drop": ["label"]}
    with pytest.raises(ConfigError, match="cannot be dropped"):
        parse_config(cfg, base_dir=tmp_path)
    del cfg["models"][0]["privacy"]
    cfg["agent"]["retention"] = {"samples_days": 0.5}  # the window is a day
    with pytest.raises(ConfigError, match="samples_days"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["agent"]["retention"] = {"evidence_days": 30}
    with pytest.raises(ConfigError, match="evidence_days"):
        parse_config(cfg, base_dir=tmp_path)


def _two_on_one_port(tmp_path, reference_csv, second=None, first=None, section="proxy"):
    """Models m1 and m2 whose taps (of `section`) share 127.0.0.1:9901."""
    import copy

    from aims_agent.config import parse_config

    cfg = base_config(reference_csv, tmp_path / "ev")
    m2 = copy.deepcopy(cfg["models"][0]) | {"name": "m2"}
    cfg["models"].append(m2)
    upstream = "http://127.0.0.1:9000" if section == "proxy" else "127.0.0.1:9000"
    for model, extra in ((cfg["models"][0], first), (m2, second)):
        model[section] = {"port": 9901, "upstream": upstream, **(extra or {})}
    return parse_config(cfg, base_dir=tmp_path)


@pytest.mark.parametrize("section", ["proxy", "grpc_proxy"])
def test_models_may_share_a_tap_port_and_are_routed_by_name(tmp_path, reference_csv, section):
    from aims_agent.config.model import route_key

    cfg = _two_on_one_port(tmp_path, reference_csv, {"upstream_model": "fraud"}, section=section)
    [(address, models)] = cfg.taps(section).items()
    assert address == "127.0.0.1:9901" and [m.name for m in models] == ["m1", "m2"]
    assert [route_key(getattr(m, section), m.name) for m in models] == ["m1", "fraud"]


@pytest.mark.parametrize(
    ("second", "first", "expected"),
    [
        ({"timeout_seconds": 5}, None, "proxy.timeout_seconds: models m1, m2 share"),
        ({"upstream": "http://127.0.0.1:9002"}, None, "proxy.upstream: models m1, m2 share"),
        ({"upstream_model": "m1"}, None, "routes of the models sharing 127.0.0.1:9901"),
        (
            {"protocol": "json", "inference_path": "/p"},
            {"protocol": "json", "inference_path": "/p/"},
            "routes of the models sharing",
        ),
        ({"protocol": "mlflow"}, None, "proxy.inference_path: model m2 shares 127.0.0.1:9901"),
    ],
)
def test_models_sharing_a_port_must_agree_and_be_told_apart(
    tmp_path, reference_csv, second, first, expected
):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        _two_on_one_port(tmp_path, reference_csv, second, first)


def test_a_listen_address_serves_one_kind_of_tap(tmp_path, reference_csv):
    from aims_agent.config import parse_config

    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["proxy"] = {"port": 9901, "upstream": "http://127.0.0.1:9000"}
    cfg["models"][0]["grpc_proxy"] = {"port": 9901, "upstream": "127.0.0.1:9001"}
    with pytest.raises(ConfigError, match="listen address used twice: 127.0.0.1:9901"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["models"][0]["grpc_proxy"] = {"port": 9902, "upstream": "localhost"}
    with pytest.raises(ConfigError, match="grpc_proxy.upstream"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["models"][0]["grpc_proxy"] = {"port": 0, "upstream": "[::1]:9001"}
    cfg["agent"]["port"] = 9901
    with pytest.raises(ConfigError, match="listen address used twice: 127.0.0.1:9901"):
        parse_config(cfg, base_dir=tmp_path)
    cfg["agent"]["port"] = 0
    assert parse_config(cfg, base_dir=tmp_path).models[0].grpc_proxy.upstream == "[::1]:9001"


def test_access_tokens_alone_are_enough(tmp_path, reference_csv):
    data = base_config(reference_csv, tmp_path / "ev")
    data["agent"]["tokens"] = []
    data["agent"]["oidc"] = {"issuer": "https://id.example.org/realms/ai", "audience": "aims"}
    cfg = parse_config(data, base_dir=tmp_path)
    assert cfg.agent.tokens == () and cfg.agent.oidc is not None
    assert cfg.agent.oidc.algorithms == ("RS256", "ES256")
    assert cfg.agent.segregation_of_duties.reviewer_not_doer
