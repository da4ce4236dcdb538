"""The Prometheus rules for the agent's metrics: valid, unit-tested by promtool, and documented.

Needs Debian's `promtool` (scripts/servers.sh installs it). Under CI a missing promtool fails.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import binary

ROOT = Path(__file__).resolve().parents[2]
RULES = "configs/prometheus/aims-rules.yml"
RULE_TESTS = "configs/prometheus/tests/aims-rules.test.yml"
RUNBOOKS = "docs/runbooks.md"
RUNBOOK_URL = "https://github.com/aims-agent/aims-agent/blob/main/docs/runbooks.md#"


@pytest.fixture(scope="module")
def promtool() -> str:
    return binary("promtool", install="scripts/servers.sh")


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((ROOT / RULES).read_text())["groups"]
    return [rule for g in groups for rule in g["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def promtool_run(promtool: str, *args: str) -> None:
    proc = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}{proc.stderr}"


def test_rules_file_is_valid(promtool):
    promtool_run(promtool, "check", "rules", RULES)


def test_rule_unit_tests_pass(promtool):
    promtool_run(promtool, "test", "rules", RULE_TESTS)


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, set[bool]] = {}
    for group in yaml.safe_load((ROOT / RULE_TESTS).read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    wanted = {"firing": True, "not firing": False}
    gaps = {
        rule["alert"]: [
            what for what, firing in wanted.items() if firing not in cases.get(rule["alert"], set())
        ]
        for rule in alerts()
    }
    assert {name: missing for name, missing in gaps.items() if missing} == {}
    assert set(cases) <= {rule["alert"] for rule in alerts()}, "a test names an unknown alert"


def test_every_alert_links_a_runbook_section_and_says_how_bad():
    headings = re.findall(r"^##\s+(.+)$", (ROOT / RUNBOOKS).read_text(), flags=re.M)
    anchors = {github_anchor(h) for h in headings}
    for rule in alerts():
        name, labels, notes = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        assert notes.get("runbook_url") == RUNBOOK_URL + name.lower(), name
        assert name.lower() in anchors, f"{RUNBOOKS} has no section '## {name}'"
        assert labels.get("severity") in {"critical", "warning", "info"}, name
        assert "team" not in labels, name
        assert notes.get("summary") and notes.get("description"), name
