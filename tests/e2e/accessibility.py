"""Accessibility checks of the console's pages: axe-core run in the page by Playwright.

axe-core comes bundled in the pinned ``axe-playwright-python`` package (no CDN, no network): the
script is evaluated in the page through the DevTools protocol, so the page's strict CSP is not
loosened for it. A page passes when axe finds no violation of ``serious`` or ``critical`` impact.
"""

from __future__ import annotations

BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def blocking_violations(page) -> list[str]:
    """The serious and critical axe violations on ``page``, one readable line per element."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"]})
    lines = []
    for violation in results.response["violations"]:
        if violation.get("impact") not in BLOCKING_IMPACTS:
            continue
        for node in violation["nodes"]:
            lines.append(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {node['target']}")
    return lines


def horizontal_overflow(page) -> tuple[int, int] | None:
    """``(scrollWidth, innerWidth)`` when the page scrolls sideways, else None."""
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return (scroll_width, inner_width) if scroll_width > inner_width else None
