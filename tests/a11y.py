"""Accessibility checks in the browser tests: axe-core (bundled by axe-playwright-python) on the current page.

The pages must meet JIS X 8341-3 (≈ WCAG 2.x AA): a page fails on any violation of a WCAG 2.x A/AA rule that
axe rates ``serious`` or ``critical``.
"""

from __future__ import annotations

from typing import Any

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
BLOCKING = {"serious", "critical"}


def violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now (every impact)."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    found: list[dict[str, Any]] = Axe().run(page, options=options).response["violations"]
    return found


def assert_accessible(page: Any, *, context: str) -> None:
    """Fail, listing them, when axe-core finds serious or critical WCAG 2.x A/AA violations on the page."""
    bad = [v for v in violations(page) if v.get("impact") in BLOCKING]
    lines = [f"  {v['id']} ({v['impact']}, {len(v['nodes'])}×): {v['help']} — "
             + ", ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:4]) for v in bad]
    assert not bad, f"axe-core on {context} ({page.url}):\n" + "\n".join(lines)
