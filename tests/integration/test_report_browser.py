"""The period report of a real agent's evidence, opened in headless Chromium (Debian's).

The agent records passing drift runs, then a breach and its nonconformity; `aims-agent report`
writes the month's HTML; Chromium renders it (DOM text, a screenshot that is not blank) and
loads it over HTTP through a logging proxy, which must see no request but the report's own.
Chromium comes from scripts/browser.sh; without it these tests skip, except in CI.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import (
    CHROMIUM_FLAGS,
    as_records,
    base_config,
    binary,
    make_rows,
    write_reference_csv,
)
from tests.integration.conftest import reap, start_agent

pytestmark = pytest.mark.integration

# Chromium's own services, which it calls whatever page it shows (component and extension
# updates, account checks): exact host names, so that a page's call to another host of the same
# company (fonts.googleapis.com, say) still counts as a leak
BROWSER_SERVICES = frozenset(
    {
        "accounts.google.com",
        "clients2.google.com",
        "clientservices.googleapis.com",
        "content-autofill.googleapis.com",
        "optimizationguide-pa.googleapis.com",
        "redirector.gvt1.com",
        "safebrowsing.googleapis.com",
        "update.googleapis.com",
    }
)
FLAGS = CHROMIUM_FLAGS
COLOURS = {"pass": (0x2E, 0x7D, 0x32), "breach": (0xC6, 0x28, 0x28)}  # the charts' bar fills


@pytest.fixture(scope="module")
def chromium() -> str:
    return binary("chromium", install="scripts/browser.sh")


def _browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _month(now: datetime) -> str:
    return now.strftime("%Y-%m")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Iterator[dict]:
    """Evidence from the real agent, then `aims-agent report --format html` on it."""
    tmp = tmp_path_factory.mktemp("browser")
    reference = write_reference_csv(tmp / "reference.csv")
    config = tmp / "agent.yaml"
    config.write_text(
        yaml.safe_dump(base_config(reference, tmp / "ev", threshold=0.3, report_on_breach=False))
    )
    began = datetime.now(UTC)
    agent = start_agent(config)
    try:
        with agent.client() as c:
            normal = as_records(make_rows(np.random.default_rng(2), 400))
            assert c.post("/v1/models/m1/records", json=normal).status_code == 200
            runs = [c.post("/v1/models/m1/checks/drift/run").json() for _ in range(3)]
            drifted = as_records(make_rows(np.random.default_rng(3), 1500, shift=2.0), start=1000)
            assert c.post("/v1/models/m1/records", json=drifted).status_code == 200
            runs += [c.post("/v1/models/m1/checks/drift/run").json() for _ in range(2)]
        assert agent.stop() == 0
    finally:
        reap(agent)
    assert [r["verdict"] for r in runs] == ["pass"] * 3 + ["breach"] * 2
    nc_id = runs[3]["nonconformity_id"]
    assert nc_id and runs[4]["nonconformity_id"] == nc_id
    ended = datetime.now(UTC)
    period = _month(began)
    if _month(ended) != period:  # the month turned during the test: cover both days
        period = f"{began.date()}..{ended.date()}"
    out = subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", "report", "--config", str(config)]
        + ["--period", period, "--format", "html"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    sha, path = out.stdout.split()
    html = Path(path)
    assert html.parent == tmp / "ev" / "reports" and html.suffix == ".html"
    assert hashlib.sha256(html.read_bytes()).hexdigest() == sha
    yield {"path": html, "nc_id": nc_id, "tmp": tmp}


def test_the_report_opens_in_chromium_with_its_text(chromium, report):
    dom = _browse(chromium, report["tmp"] / "profile-dom", "--dump-dom", report["path"].as_uri())
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    for needle in (
        "Model m1",
        "Nonconformities",
        "A.6.2.6",
        "A.7.4",
        "Statement of applicability",
        report["nc_id"],
    ):
        assert needle in text, needle
    assert dom.stdout.count("<svg") >= 2  # the trend charts are in the rendered page


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows (RGB or RGBA, 8 bits) of a non-interlaced PNG: no PIL needed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i : i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_the_screenshot_shows_the_report_and_its_charts(chromium, report):
    shot = report["tmp"] / "report.png"
    _browse(
        chromium,
        report["tmp"] / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        report["path"].as_uri(),
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    colours = set(pixels)
    assert len(colours) > 50  # text, tables, badges and charts; a blank page has one or two
    assert sum(p != b"\xff\xff\xff" for p in pixels) > 0.05 * len(pixels)
    for name, rgb in COLOURS.items():
        assert bytes(rgb) in colours, f"no {name} bar in the charts"


class _Logged(http.server.SimpleHTTPRequestHandler):
    """Serves the report's folder; as a proxy, answers nothing but notes every request."""

    seen: list[str]

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.seen.append(self.requestline)
        return ok

    def log_message(self, *args: object) -> None:
        pass


def _serve(directory: Path, seen: list[str]) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (_Logged,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _load(chromium: str, profile: Path, directory: Path, name: str) -> list[str]:
    """Requests seen while Chromium loads `name` over HTTP: the page's own (path only) and,
    through the same server as its proxy, those to any other host (absolute URL or CONNECT)."""
    seen: list[str] = []
    server = _serve(directory, seen)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _browse(chromium, profile, f"--proxy-server={base}", "--dump-dom", f"{base}/{name}")
    finally:
        server.shutdown()
        server.server_close()
    return seen


def _host(requestline: str) -> str | None:
    """The host a request goes to through the proxy; None for one to the server itself."""
    target = requestline.split()[1]
    if target.startswith("/"):
        return None
    return re.sub(r"^[a-z]+://", "", target).split("/")[0].split(":")[0]


def test_no_request_leaves_the_page(chromium, report):
    html = report["path"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    seen = _load(
        chromium, report["tmp"] / "profile-net", report["path"].parent, report["path"].name
    )
    own = [r for r in seen if _host(r) is None]
    assert own == [f"GET /{report['path'].name} HTTP/1.1"]
    leaks = [r for r in seen if _host(r) is not None and _host(r) not in BROWSER_SERVICES]
    assert leaks == []


def test_the_proxy_would_see_a_page_that_calls_out(chromium, tmp_path):
    """The control for the test above: a page without the report's policy that loads images
    from elsewhere over http and https is caught, and its hosts are not taken for Chromium's."""
    (tmp_path / "leak.html").write_text(
        '<!DOCTYPE html><p>leak</p><img src="http://leak.example/a.png">'
        '<img src="https://fonts.googleapis.com/b.png">'
    )
    seen = _load(chromium, tmp_path / "profile", tmp_path, "leak.html")
    hosts = {_host(r) for r in seen} - BROWSER_SERVICES
    assert {"leak.example", "fonts.googleapis.com"} <= hosts


def test_the_report_prints_to_paged_pdf(chromium, report):
    """Printed, the page rules apply: the model and the statement of applicability each start
    a new A4 page."""
    pdf = report["tmp"] / "report.pdf"
    _browse(
        chromium,
        report["tmp"] / "profile-pdf",
        f"--print-to-pdf={pdf}",
        "--no-pdf-header-footer",
        report["path"].as_uri(),
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert pages >= 3, pages
    sizes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert sizes and all(abs(float(w) - 595.9) < 2 and abs(float(h) - 842.9) < 2 for w, h in sizes)
