from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def require_chromium(path: str = CHROMIUM) -> None:
    """Browser tests fail loudly without a browser; SKIP_BROWSER=1 is the explicit opt-out."""
    if not Path(path).exists():
        message = f"Chromium not found at {path} (set CHROMIUM_PATH; `make test` installs it as root)"
        if os.environ.get("SKIP_BROWSER") == "1":
            pytest.skip(f"{message}; SKIP_BROWSER=1")
        pytest.fail(message)


@pytest.fixture(scope="session")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


SIGN_UP_PASSWORD = "a-long-Passw0rd-for-tests"


def sign_up(page, base: str, email: str, password: str = SIGN_UP_PASSWORD) -> None:
    """Sign up through the form; development logs the new user in at once."""
    from playwright.sync_api import expect

    page.goto(base + "/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.locator("input[name=password1]").fill(password)
    page.locator("input[name=password2]").fill(password)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="My Exchanges")).to_be_visible()


@pytest.fixture
def screenshot():
    """Save a screenshot to $SCREENSHOT_DIR when set (used to refresh docs/screenshots)."""
    target = os.environ.get("SCREENSHOT_DIR")

    def take(page, name: str) -> None:
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(target) / f"{name}.png"))

    return take
