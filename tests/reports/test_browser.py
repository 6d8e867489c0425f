"""The HTML report in a real browser (headless Chromium, Debian's `chromium`): every image loads, nothing
is wider than the page, and a screenshot is not blank."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reports.conftest import Written

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)

# Run after every image has loaded (the load event): what the test asserts, written into the page so that
# --dump-dom returns it.
PROBE = """
<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}));
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName + ":" + (e.textContent || "").slice(0, 40));
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({width, scroll: document.documentElement.scrollWidth, images, wide});
  document.body.appendChild(probe);
});
</script>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def _probe(page: Path, width: int) -> dict[str, Any]:
    probed = page.with_name(f"probe-{width}.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    result = _chromium(
        f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    start = result.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    text = result.stdout[start : result.stdout.index("</pre>", start)]
    found: dict[str, Any] = json.loads(html.unescape(text))
    return found


@needs_chromium
@pytest.mark.parametrize("width", [1280, 800])
def test_every_image_loads_and_nothing_overflows(written: Written, width: int) -> None:
    found = _probe(written.out / "report.html", width)
    plots = [p for s in written.document["sections"] for p in s["plots"]]
    assert len(found["images"]) == len(plots) == 5
    assert all(i["complete"] and i["width"] > 0 for i in found["images"]), found["images"]
    assert found["scroll"] <= found["width"], found
    assert found["wide"] == []


@needs_chromium
def test_a_screenshot_is_not_blank(written: Written, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    shot = tmp_path / "report-screenshot.png"
    result = _chromium(
        f"--screenshot={shot}", "--window-size=1100,2400", (written.out / "report.html").as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        gray = image.convert("L")
        assert gray.size == (1100, 2400)
        variance = ImageStat.Stat(gray).var[0]
        colours = len(image.convert("RGB").getcolors(maxcolors=1 << 24) or [])
    assert variance > 100 and colours > 50, (variance, colours)
