"""report.png and report_config.png beside this file: a compare report as headless Chromium
shows it, its first screen and the end of the page (the resolved config).

    parsefl compare --methods parse,dsgd_full,local --seeds 0 -o rounds=6 -o eval_every=3 \
        --out /tmp/compare
    parsefl report /tmp/compare
    python docs/figures/report_screenshots.py /tmp/compare/report.html   # needs chromium

(``apt-get install chromium``.) Chromium's --screenshot takes the window from the top and
ignores a #fragment, so the end of the page is cut from a screenshot of a window as tall as
the page.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, SCREEN = 1280, 900
HERE = Path(__file__).resolve().parent


def screenshot(page: Path, height: int, out: Path) -> Image.Image:
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={WIDTH},{height}",
                    f"--screenshot={out}", page.resolve().as_uri()],
                   check=True, capture_output=True)
    return Image.open(out).convert("RGB")


def main(page: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = screenshot(page, SCREEN, Path(tmp) / "first.png")
        full = screenshot(page, 20_000, Path(tmp) / "full.png")
    inked = np.flatnonzero((np.asarray(full) < 250).any(axis=(1, 2)))
    end = int(inked[-1]) + 40
    last = full.crop((0, max(0, end - SCREEN), WIDTH, end))
    for image, name in ((first, "report.png"), (last, "report_config.png")):
        image.quantize(colors=128).save(HERE / name, optimize=True)
        print(HERE / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
