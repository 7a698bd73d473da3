"""The README's "The console" section and docs/console.md: every link and screenshot they name exists.

The screenshots are the walk-through's own (tests/e2e/test_console_walkthrough.py, with
``CONSOLE_SCREENSHOTS=docs/images``): PNG images of the 1366-pixel-wide window, small enough for a
README.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from tests.e2e.test_console_walkthrough import README_SCREENSHOTS

PROJECT_DIR = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAX_SCREENSHOT_BYTES = 200_000


def _console_section() -> str:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    return readme.split("## The console", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("name", ["README.md", "docs/console.md"])
def test_every_relative_link_and_image_resolves(name):
    path = PROJECT_DIR / name
    text = _console_section() if name == "README.md" else path.read_text(encoding="utf-8")
    targets = [target for target in LINK.findall(text) if "://" not in target]
    assert targets, "no link found: the pattern is wrong"
    missing = [target for target in targets if not (path.parent / target).exists()]
    assert missing == []


def test_the_readme_shows_the_walk_throughs_three_screenshots_at_1366_pixels():
    section = _console_section()
    for file_name in README_SCREENSHOTS.values():
        assert f"docs/images/{file_name}" in section
        data = (PROJECT_DIR / "docs" / "images" / file_name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert (width, height) == (1366, 768)
        assert len(data) < MAX_SCREENSHOT_BYTES
