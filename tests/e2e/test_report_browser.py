"""The report page in a real browser: headless Chromium from Debian's `chromium` package (installed by `make setup`).

Reads the DOM after the page's scripts ran (the lab's matrix, the search), and checks a screenshot is not blank.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scripts.headless_chromium import ROOT, dump_dom, find_chromium, screenshot, write_lab_report
from tests.builders import small_topology

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: `make setup` installs Debian's chromium with apt-get; "
    "without root or a Debian package source it cannot, and the browser test is skipped")


class Dom(HTMLParser):
    """The matrix cells, matrix row headers and domain-pair rows of a dumped page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.pair_rows: list[dict[str, str]] = []
        self.lines: list[dict[str, str]] = []
        self.count_text = ""
        self._in_count = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "td" and "data-state" in a:
            self.cells.append(a)
        elif tag == "tr" and "data-a" in a:
            self.pair_rows.append(a)
        elif tag == "line" and "data-state" in a:
            self.lines.append(a)
        self._in_count = a.get("id") == "match-count"

    def handle_data(self, data: str) -> None:
        if self._in_count:
            self.count_text += data


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lab_report(tmp_path_factory.mktemp("lab") / "report.html")


def cell(dom: Dom, row: str, col: str) -> dict[str, str]:
    (found,) = [c for c in dom.cells if c.get("data-row") == row and c.get("data-col") == col]
    return found


def test_lab_matrix_in_the_browser_opens_1_2_and_gateway_3_blocks_1_3_and_2_3(lab_page: Path) -> None:
    assert CHROMIUM is not None
    dom = Dom(dump_dom(CHROMIUM, lab_page.as_uri()))
    for row, col in (("ergw-01", "ergw-02"), ("ergw-02", "ergw-01")):
        c = cell(dom, row, col)
        assert c["data-state"] == "open" and c["class"].split()[:2] == ["cell", "o"]
        assert "hub-01 <-> hub-02: open ER-transit pair" in c["title"]
    for row, col in (("ergw-01", "ergw-03"), ("ergw-03", "ergw-01"), ("ergw-02", "ergw-03"), ("ergw-03", "ergw-02")):
        c = cell(dom, row, col)
        assert c["data-state"] == "blocked" and c["data-blocked-by"] == "ergw-03"
        assert "ergw-03 allowRemoteVnetTraffic is false" in c["title"]
    assert [c["data-state"] for c in dom.cells].count("self") == 3
    # The diagram: one solid open path, two dashed blocked ones.
    assert sorted((ln["class"], ln["data-state"]) for ln in dom.lines) == [
        ("l-b", "blocked"), ("l-b", "blocked"), ("l-o", "open")]
    assert [(r["data-a"], r["data-b"]) for r in dom.pair_rows] == [("hub-01", "hub-02")]


@pytest.fixture(scope="module")
def estate_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six hubs with spokes on two circuits: enough domain pairs for a search to narrow."""
    hubs = [{"spokes": [{}] * (i % 3), "circuits": (0,) if i < 4 else (0, 1)} for i in range(6)]
    folder = tmp_path_factory.mktemp("estate")
    snapshot = folder / "estate.json"
    snapshot.write_text(json.dumps(small_topology(hubs, circuits=2)), encoding="utf-8")
    out = folder / "report.html"
    subprocess.run([sys.executable, "-m", "shared.cli", "report", str(snapshot), "-o", str(out)], check=True,
                   cwd=ROOT, capture_output=True)
    return out


@pytest.mark.parametrize(("query", "expected"), [
    ("", 15),  # 6 hubs: every pair of gateways shares circuit er-0
    ("spoke-62", 5),  # a spoke's name: hub-6's pairs only
    ("10.3.0.0", 5),  # a hub's prefix
    ("er-1", 1),  # a circuit: only hub-5 and hub-6 share er-1
    ("no-such-vnet", 0),
])
def test_search_from_the_page_address_filters_the_domain_pairs(estate_page: Path, query: str, expected: int) -> None:
    assert CHROMIUM is not None
    dom = Dom(dump_dom(CHROMIUM, estate_page.as_uri() + (f"#q={query}" if query else "")))
    assert len(dom.pair_rows) == expected
    assert dom.count_text.startswith(f"{expected} of 15 domain pairs")
    if query.startswith("spoke") or query.startswith("10."):
        owner = "hub-6" if query.startswith("spoke") else "hub-3"
        assert all(owner in (r["data-a"], r["data-b"]) for r in dom.pair_rows)


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit RGB/RGBA PNG (what Chromium writes), unfiltered."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = 0
    channels = 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = prev[x], prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_screenshot_of_the_lab_report_is_not_blank_and_shows_the_open_path(lab_page: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    shot = screenshot(CHROMIUM, lab_page.as_uri(), tmp_path / "lab.png", size="1100,760")
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1100, 760)
    channels = len(rows[0]) // width
    colours: set[bytes] = set()
    non_white = green = 0
    for row in rows[::2]:
        for x in range(0, width * channels, channels * 2):
            px = row[x:x + 3]
            colours.add(px)
            non_white += px != b"\xff\xff\xff"
            green += px[1] > 100 and px[0] < 80 and px[2] < 100  # the open cell and path (#1a7f37)
    sampled = (height // 2) * (width // 2)
    assert len(colours) > 50 and non_white > sampled // 20
    assert green > 20, "the open path ①⇄② (green) is not on the screenshot"
