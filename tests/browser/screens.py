"""What every browser test shares: the two widths, the sign-in form filled as a person would, and
`accessible(page, screen)`, axe-core's check of a screen with its picture kept. Apart from conftest so
that only the browser tests import Playwright and axe-core."""

from __future__ import annotations

from pathlib import Path

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from conftest import PASSWORD
from playwright.sync_api import Page, ViewportSize

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
AXE = Axe()


def accessible(page: Page, screen: str) -> None:
    """axe-core finds nothing on the screen, at the width it is shown, and nothing is wider than it;
    its picture is kept."""
    results = AXE.run(page)
    assert results.violations_count == 0, f"{screen}: {results.generate_report()}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{screen}: {width} px wide"  # type: ignore[index]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{screen}.png", full_page=True)


def sign_in(page: Page, email: str, password: str = PASSWORD, *, at: str = "") -> None:
    """The sign-in form filled and sent (`at`: another platform's address than the page's base URL)."""
    page.goto(f"{at}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
