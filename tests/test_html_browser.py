"""The HTML report in a real browser: headless Chromium loads the report of a fixture,
and the page must show the diagnosis and findings tables and the gradient-flow picture,
decoded (not a broken image) and drawn (not blank) in a screenshot.

Debian's ``chromium`` package (``.ci/run`` installs it when run as root); the test skips
where /usr/bin/chromium is absent. A small script added to a copy of the page writes,
once the page has loaded, each image's decoded size and its box on the page into the
DOM that ``--dump-dom`` prints; the screenshot is then cut to that box.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, run_cli

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 2000)
"""Tall enough for the whole report of dead_relu.keras (the picture is last)."""
PROBE = """<script>
window.addEventListener("load", () => {
  for (const element of document.querySelectorAll("img, table")) {
    const box = element.getBoundingClientRect();
    element.dataset.box = [box.left, box.top, box.width, box.height].join(",");
  }
  for (const image of document.images) {
    image.dataset.natural = image.naturalWidth + "x" + image.naturalHeight;
  }
});
</script>
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is absent (Debian's chromium package)")


def _chromium(page: Path, tmp: Path, *action: str) -> str:
    """Run headless Chromium on ``page`` with one action; its stdout."""
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
         "--window-size={},{}".format(*WINDOW), *action, page.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class _Page(HTMLParser):
    """The headings, table cells and images of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.cells: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tables: list[tuple[float, ...]] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        elif tag == "table":
            self.tables.append(tuple(float(v) for v in dict(attrs)["data-box"].split(",")))
        elif tag in {"h2", "h3", "td"}:
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"h2", "h3", "td"} and self._text is not None:
            (self.cells if tag == "td" else self.headings).append("".join(self._text).strip())
            self._text = None


def _png_size(src: str) -> tuple[int, int]:
    """Width and height from the PNG header of a data: URI."""
    data = base64.b64decode(src.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of dead_relu.keras as `gradaudit audit --format html` writes it,
    with the probe script added before </body>."""
    root = tmp_path_factory.mktemp("browser")
    page = root / "report.html"
    result = run_cli("audit", str(FIXTURES / "dead_relu.keras"), "--format", "html",
                     "--output", str(page), "-q")
    assert result.exit_code == 1, result.stderr  # dead_relu has errors
    probed = root / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                      encoding="utf-8")
    return probed


def test_the_page_shows_the_tables_and_a_decoded_picture(report: Path, tmp_path: Path) -> None:
    page = _Page()
    page.feed(_chromium(report, tmp_path, "--dump-dom"))
    assert {"Diagnosis", "Findings"} <= set(page.headings)
    # Laid out: the diagnosis and findings tables (the first two) take room on the page.
    assert all(width > 100 and height > 20 for _, _, width, height in page.tables[:2])
    assert {"GA102", "dead"} <= set(page.cells)  # the root cause, in the tables
    (image,) = page.images
    assert image["alt"].startswith("gradient flow of ")
    width, height = _png_size(image["src"])
    assert image["data-natural"] == f"{width}x{height}" and width > 100 and height > 100


def test_the_screenshot_shows_the_picture(report: Path, tmp_path: Path) -> None:
    from matplotlib import image as mpimg

    page = _Page()
    page.feed(_chromium(report, tmp_path, "--dump-dom"))
    left, top, width, height = (float(v) for v in page.images[0]["data-box"].split(","))
    assert width > 100 and height > 100 and top + height <= WINDOW[1], "picture off the page"
    shot = tmp_path / "shot.png"
    _chromium(report, tmp_path, f"--screenshot={shot}")
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    region = pixels[int(top) + 1:int(top + height) - 1, int(left) + 1:int(left + width) - 1]
    # Not blank: a plot has white background, black axes, text and coloured bars.
    colours = np.unique((region * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20 and region.std() > 0.05
    assert (region.min(axis=2) < 0.5).mean() > 0.01  # dark pixels: axes and labels


def test_a_broken_picture_would_be_seen(report: Path, tmp_path: Path) -> None:
    """The check above can fail: the same page with its PNG cut short decodes to 0×0."""
    broken = tmp_path / "broken.html"
    text = report.read_text(encoding="utf-8")
    broken.write_text(re.sub(r'(src="data:image/png;base64,)([^"]{0,64})[^"]*"', r'\1\2"',
                             text), encoding="utf-8")
    page = _Page()
    page.feed(_chromium(broken, tmp_path, "--dump-dom"))
    assert page.images[0]["data-natural"] == "0x0"
