"""What a newcomer sees of issue 13's points 3 and 10, in Chromium against a live server: the
key-attempt limit in the connect dialog says when the next key may be tried (1280 px, 375 px,
dark), and the key guides are reachable from the home page without an account."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from allauth.core.internal.ratelimit import get_cache_key, get_rates
from django.core.cache import cache
from django.test import RequestFactory
from playwright.sync_api import expect

from accounts.models import User
from exchanges import connect_limit
from exchanges.models import ExchangeConnection
from tests.e2e.conftest import sign_up

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True)
def _empty_cache():
    """The rate-limit counters these tests fill must not outlive them (user ids are reused)."""
    cache.clear()
    yield
    cache.clear()


def _sign_up(page, base: str, email: str) -> User:
    sign_up(page, base, email)
    return User.objects.get(email=email)


def _ten_keys_tried(user: User, *, next_allowed_in: float) -> datetime:
    """The account's counter as allauth keeps it, full: the oldest of ten hits frees a place in
    `next_allowed_in` seconds. Returns when."""
    rate = next(r for r in get_rates(app=connect_limit.APP, action=connect_limit.ACTION) if r.per == "user")
    request = RequestFactory().post("/")
    key = get_cache_key(request, app=connect_limit.APP, action=connect_limit.ACTION, rate=rate, user=user)
    oldest = time.time() - rate.duration + next_allowed_in
    cache.set(key, [oldest + 30 * i for i in range(rate.amount)][::-1], rate.duration)
    return datetime.fromtimestamp(oldest + rate.duration, UTC)


@pytest.mark.parametrize(
    ("width", "scheme", "shot"), [(1280, "light", "40"), (375, "light", "41"), (1280, "dark", "42")]
)
def test_the_connect_dialog_says_when_the_next_key_may_be_tried(
    browser, live_server, screenshot, width, scheme, shot
):
    context = browser.new_context(viewport={"width": width, "height": 860}, color_scheme=scheme)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        user = _sign_up(page, live_server.url, f"limited-{shot}@example.com")
        allowed_at = _ten_keys_tried(user, next_allowed_in=22 * 60 + 30)
        minute = allowed_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        page.get_by_role("link", name="Add New Exchange").first.click()
        dialog = page.locator("dialog.modal")
        dialog.get_by_test_id("pick-htx").click()
        dialog.get_by_label("API Key").fill("demo1a2b-c3d4e5f6-0a1b2c3d-4e5f6")
        dialog.get_by_label("Secret Key").fill("5f2e8d1c-9a7b3c4d-11223344-aabbc")
        dialog.get_by_role("button", name="Connect").click()
        alert = dialog.get_by_role("alert")
        expect(alert).to_contain_text("You have tried 10 keys from this account in the last hour")
        expect(alert).to_contain_text(f"You can try another key in 23 minutes, at {minute:%H:%M} UTC.")
        expect(dialog.get_by_label("API Key")).to_have_value("demo1a2b-c3d4e5f6-0a1b2c3d-4e5f6")
        expect(dialog.get_by_label("Secret Key")).to_have_value("")  # never sent back
        assert not ExchangeConnection.objects.filter(owner=user).exists()
        box = alert.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, "the message fits the screen"
        alert.scroll_into_view_if_needed()
        screenshot(page, f"{shot}-connect-limit-{width}-{scheme}")
    finally:
        context.close()


def test_a_visitor_reaches_a_key_guide_from_the_home_page(page, live_server, screenshot):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_server.url + "/")
    guides = page.locator(".key-guides")
    expect(guides).to_contain_text("Need an API key first?")
    screenshot(page, "43-home-key-guides")
    guides.get_by_role("link", name="Bybit").click()
    expect(page).to_have_url(live_server.url + "/exchanges/help/bybit-api-key/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bybit")
    page.get_by_role("link", name="Sign up to connect Bybit").click()
    expect(page).to_have_url(live_server.url + "/accounts/signup/")
    expect(page.locator(".key-guides")).to_contain_text("no account needed")
