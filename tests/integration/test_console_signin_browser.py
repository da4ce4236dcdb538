"""Governance people at work in real headless Chromium (Debian's, driven by Playwright): they sign
in through a real OpenID provider on loopback, see a running agent's breach appear on the
overview, walk its nonconformity from open to closed (a second person records the effectiveness
review), meet a refused step's message on the form, download the audit pack and check its
hashes. axe-core checks every console page for serious or critical accessibility violations;
a screenshot of each page is written to the test artifacts (AIMS_TEST_ARTIFACTS, default
test-artifacts/ in the repository)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import audit_pack_files, base_config, binary, write_reference_csv

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AIMS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"
ENV = {"AIMS_CONSOLE_SESSION_SECRET": "k" * 48, "AIMS_CONSOLE_CLIENT_SECRET": "c" * 24}
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = binary("chromium", install="scripts/browser.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Person:
    """One person's browser session on the console."""

    def __init__(self, browser: Any, console: str, sub: str) -> None:
        self.context = browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        self.page = self.context.new_page()
        self.console = console
        self.sub = sub

    def sign_in(self) -> None:
        self.page.goto(self.console + "/")
        # the provider's login form (a subject field), then back on the console
        self.page.fill("input[name=sub]", self.sub)
        self.page.click("button[type=submit]:has-text('Authorize')")
        self.page.wait_for_url(self.console + "/")

    def open(self, path: str) -> Any:
        self.page.goto(self.console + path)
        return self.page

    def check(self, name: str) -> None:
        """Screenshot the page as an artifact and run axe-core on it."""
        from axe_playwright_python.sync_playwright import Axe

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        found = Axe().run(self.page).response["violations"]
        bad = [(v["id"], v["impact"], v["help"]) for v in found if v["impact"] in SERIOUS]
        assert not bad, (name, bad)

    def step(self, **fields: str) -> None:
        """Fill the record's form (selects and text) and submit it."""
        for name, value in fields.items():
            selector = f"[name='{name.replace('__', '.')}']"
            if self.page.locator(selector).evaluate("e => e.tagName") == "SELECT":
                self.page.select_option(selector, value)
            else:
                self.page.fill(selector, value)
        self.page.click("button:has-text('Record this step')")
        self.page.wait_for_load_state()


def test_people_work_a_breach_from_open_to_closed_in_the_browser(
    browser, identity_provider, tmp_path, drifted_agent
):
    cfg = base_config(write_reference_csv(tmp_path / "reference.csv"), tmp_path / "evidence")
    cfg["console"] = {
        "enabled": True,
        "sign_in": {
            "issuer": identity_provider.url,
            "client_id": "aims-console",
            "client_secret_env": "AIMS_CONSOLE_CLIENT_SECRET",
        },
    }
    agent = drifted_agent(cfg, seed=5, env=ENV)
    console = agent.url + "/console"
    alice = Person(browser, console, "alice")
    alice.sign_in()
    page = alice.page
    assert "Signed in as Alice Auditor" in page.inner_text("header")
    assert "breach" not in page.inner_text("main")

    # the running agent breaches; the overview shows it
    with agent.client() as c:
        run = c.post("/v1/models/m1/checks/drift/run").json()
    assert run["verdict"] == "breach"
    nc = run["nonconformity_id"]
    page.reload()
    assert "breach" in page.inner_text("main") and "1 open nonconformity" in page.inner_text("main")
    alice.check("overview")
    for name, path in {
        "controls": "/controls",
        "check": "/models/m1/checks/drift",
        "register": "/nonconformities",
        "audit-pack": "/audit-pack",
    }.items():
        alice.open(path)
        alice.check(name)

    # the record: open -> investigating -> corrective action -> verifying
    alice.open("/nonconformities")
    page.click(f"a:has-text('{nc}')")
    alice.check("record-open")
    alice.step(status="investigating", reaction__action="Traffic of the drifted segment halved")
    assert "Recorded: updated, investigating" in page.inner_text("main")
    alice.step(status="corrective_action", corrective_action__description="Retrain")
    refusal = page.inner_text("[role=alert]")
    assert "Refused (422)" in refusal and "corrective_action.owner: is required" in refusal
    assert page.get_attribute("#f-corrective-action-owner", "aria-invalid") == "true"
    alice.check("record-refused")
    alice.step(
        status="corrective_action", corrective_action__owner="ml-platform",
        corrective_action__due_date="2031-01-31",
        cause_analysis__root_cause="An upstream feature changed its units",
    )  # fmt: skip
    alice.step(status="verifying", corrective_action__status="done")
    assert "verifying" in page.inner_text("h1")
    # whoever did the action may not review it
    alice.step(effectiveness_review__effective="yes", effectiveness_review__evidence="looks fine")
    assert "segregation of duties" in page.inner_text("[role=alert]")

    # a second person reviews the action and closes the record
    bob = Person(browser, console, "bob")
    bob.sign_in()
    bob.open(f"/nonconformities/{nc}")
    bob.step(
        status="closed", effectiveness_review__effective="yes",
        effectiveness_review__evidence="Drift share under 0.1 in every run for 7 days",
    )  # fmt: skip
    assert "closed" in bob.page.inner_text("h1")
    history = bob.page.inner_text("#history + ol")
    assert "Alice Auditor" in history and "Bob Reviewer" in history
    bob.check("record-closed")

    # the audit pack: every file matches its line in SHA256SUMS
    bob.open("/audit-pack")
    bob.page.fill("#period", "2020-01-01..2100-01-01")
    with bob.page.expect_download() as info:
        bob.page.click("button:has-text('Download the audit pack')")
    files = audit_pack_files(info.value.path().read_bytes())
    assert len(files) == 5
    assert nc.encode() in files[next(n for n in files if n.endswith(".json") and "report" in n)]

    # readable on a tablet: nothing wider than the screen but the chart and wide tables
    bob.page.set_viewport_size({"width": 768, "height": 1024})
    for name, path in {"tablet-overview": "/", "tablet-record": f"/nonconformities/{nc}"}.items():
        bob.open(path)
        assert bob.page.evaluate("document.body.scrollWidth <= window.innerWidth"), name
        bob.check(name)

    # signing out ends the session
    bob.page.click("button:has-text('Sign out')")
    assert "Signed out" in bob.page.inner_text("h1")
    bob.check("signed-out")
    bob.open("/nonconformities")
    assert bob.page.url.startswith(identity_provider.url)
    for person in (alice, bob):
        person.context.close()
