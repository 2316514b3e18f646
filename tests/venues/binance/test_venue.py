"""The Binance venue: what it declares, format checks before any network call, limits, texts,
the help page and the logo. No network."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from exchanges.venues.binance import client as client_module
from exchanges.venues.binance.client import BinanceClient, redact
from exchanges.venues.binance.venue import BINANCE, BinanceVenue
from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import Limit, Text, Venue

ROOT = Path(__file__).resolve().parents[3]
VENUE_DIR = ROOT / "exchanges" / "venues" / "binance"
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_it_declares_what_the_dashboard_shows():
    assert isinstance(BINANCE, BinanceVenue) and isinstance(BINANCE, Venue)
    assert (BINANCE.id, BINANCE.name, BINANCE.env_prefix) == ("binance", "Binance", "BINANCE")
    assert BINANCE.default_api_url == "https://api.binance.com"
    assert BINANCE.api_management_url == "https://www.binance.com/en/my/settings/api-management"
    assert BINANCE.help_template == "binance/help.html"
    assert BINANCE.help_title == "How to create a Binance API key"
    assert BINANCE.uid_label == "Binance UID"
    assert BINANCE.logo == "img/binance.svg" and (ROOT / "static" / BINANCE.logo).is_file()
    assert (ROOT / "exchanges" / "venues" / BINANCE.help_template).is_file()
    assert 0 < len(BINANCE.tagline) <= 40
    assert [f.name for f in BINANCE.credential_fields] == ["access_key", "secret_key"]
    assert [f.secret for f in BINANCE.credential_fields] == [False, True]
    assert repr(BINANCE) == "<Venue binance>"


def test_the_checklist_names_binance_boxes_and_the_30_day_rule():
    text = " ".join(BINANCE.checklist)
    for words in ("Enable Reading", "Enable Spot & Margin Trading", "Enable Withdrawals", "System generated"):
        assert words in text
    assert "30 days" in text and "IP restriction" in text
    assert all("<" not in line for line in BINANCE.checklist)  # plain text


REQUIRED_TEXTS = (
    "key_ip_or_permission",
    "invalid_access_key",
    "invalid_signature",
    "restricted_location",
    "rate_limited",
    "maintenance",
    "unavailable",
    "incorrect_permissions",
    "withdraw_enabled",
    "trading_expired",
    "expired",
)


@pytest.mark.parametrize("key", REQUIRED_TEXTS)
def test_every_required_text_has_a_title_a_cause_and_one_fix(key):
    text = BINANCE.texts[key]
    assert isinstance(text, Text)
    assert text.title and text.cause and text.fix
    assert "<" not in text.title + text.cause + text.fix
    assert text.fix.count(". ") <= 1  # one step, not a list


def test_texts_are_keyed_by_plain_strings_of_error_kinds_and_statuses():
    kinds = {kind.value for kind in ErrorKind}
    assert all(isinstance(key, str) for key in BINANCE.texts)
    assert {"key_ip_or_permission", "invalid_access_key", "restricted_location"} <= kinds
    assert BINANCE.texts[ErrorKind.KEY_IP_OR_PERMISSION] is BINANCE.texts["key_ip_or_permission"]


def test_the_ambiguous_refusal_names_all_three_causes_and_can_show_the_ip():
    text = BINANCE.texts["key_ip_or_permission"]
    cause = text.cause.lower()
    assert "deleted" in cause and "mistyped" in cause  # unknown key
    assert "ip" in cause  # this server's IP not in the whitelist
    assert "permission" in cause
    assert "{ip}" in text.fix_with_ip and "{ip}" not in text.fix
    assert text.fix_with_ip.format(ip="203.0.113.9").count("203.0.113.9") == 2


def test_texts_use_binance_words():
    assert "64 letters and digits" in BINANCE.texts["invalid_access_key"].cause
    assert "Enable Spot & Margin Trading" in BINANCE.texts["trading_expired"].fix
    assert "IP" in BINANCE.texts["trading_expired"].fix
    assert "balances keep refreshing" in BINANCE.texts["trading_expired"].cause
    assert "Enable Withdrawals" in BINANCE.texts["withdraw_enabled"].cause
    assert "United States" in BINANCE.texts["restricted_location"].cause
    assert "server in a country Binance.com serves" in BINANCE.texts["restricted_location"].fix


# --- validate -----------------------------------------------------------------------------


def _check(api_key: str, secret: str) -> dict[str, str]:
    return BINANCE.validate(Credentials(api_key, secret))


def test_a_well_formed_pair_passes():
    assert _check(KEY, SECRET) == {}


@pytest.mark.parametrize(("length", "field"), [(63, "access_key"), (65, "secret_key"), (32, "access_key")])
def test_length_is_checked_and_named(length, field):
    short = ("A1" * 40)[:length]
    errors = _check(short, SECRET) if field == "access_key" else _check(KEY, short)
    assert list(errors) == [field]
    assert "64 letters and digits" in errors[field]
    assert f"this one is {length} characters" in errors[field]


def test_other_ascii_characters_are_refused():
    errors = _check(KEY[:-1] + "-", SECRET)
    assert "64 letters and digits" in errors["access_key"]


@pytest.mark.parametrize("bad", [KEY[:-1] + "é", KEY[:-1] + "\u200b", "Ａ" * 64])
def test_non_ascii_is_refused(bad):
    errors = _check(bad, SECRET)
    assert "characters Binance never uses" in errors["access_key"]


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _pem(Ed25519PrivateKey.generate()),
        lambda: _pem(generate_private_key(public_exponent=65537, key_size=2048)),
        lambda: "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        # As the one-line form field leaves it: every space and line break removed.
        lambda: "".join(_pem(Ed25519PrivateKey.generate()).split()),
    ],
)
def test_a_private_key_pasted_as_secret_gets_a_clear_message(make):
    errors = _check(KEY, make())
    message = errors["secret_key"]
    assert "System generated" in message and "HMAC" in message
    assert "Ed25519" in message and "RSA" in message


def test_the_same_value_in_both_fields_is_refused():
    errors = _check(KEY, KEY)
    assert list(errors) == ["__all__"]
    assert "same" in errors["__all__"]


def test_validation_messages_never_echo_the_value():
    for errors in (_check(KEY[:40], SECRET[:50]), _check(KEY + "é", SECRET), _check(KEY, KEY)):
        for message in errors.values():
            assert KEY[:40] not in message and SECRET[:40] not in message


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "group", "limit", "weight"),
    [
        ("/api/v3/time", "api", 6000, 1),
        ("/api/v3/exchangeInfo", "api", 6000, 20),
        ("/api/v3/ticker/price", "api", 6000, 4),
        ("/api/v3/account", "api", 6000, 20),
        ("/api/v3/order/test", "api", 6000, 1),
        ("/sapi/v1/account/apiRestrictions", "sapi", 12000, 1),
        ("/sapi/v1/asset/get-funding-asset", "sapi", 12000, 1),
        ("/sapi/v1/asset/wallet/balance", "sapi", 12000, 60),
        ("/sapi/v1/simple-earn/flexible/position", "sapi", 12000, 150),
        ("/sapi/v1/simple-earn/locked/position", "sapi", 12000, 150),
        ("/sapi/v1/margin/account", "sapi", 12000, 10),
        ("/fapi/v2/balance", "fapi", 2400, 5),
    ],
)
def test_each_endpoint_costs_its_weight_against_its_shared_per_ip_budget(path, group, limit, weight):
    rule = BINANCE.limit_for(path)
    assert isinstance(rule, Limit)
    assert (rule.group, rule.limit, rule.window_ms, rule.weight) == (group, limit, 60_000, weight)
    assert rule.shared


def test_unknown_paths_fall_into_their_family_budget():
    assert BINANCE.limit_for("/api/v3/openOrders").group == "api"
    assert BINANCE.limit_for("/sapi/v1/capital/config/getall").group == "sapi"
    assert BINANCE.limit_for("/fapi/v2/account").group == "fapi"
    assert set(BINANCE.limits) >= {"/api/v3/account", "api", "sapi", "fapi"}


# --- client, redact ------------------------------------------------------------------------


def test_client_is_a_binance_client_and_keeps_secrets_out_of_its_repr():
    made = BINANCE.client(
        base_url="http://127.0.0.1:9/",
        credentials=Credentials(KEY, SECRET),
        timeout=(1.0, 2.0),
        scope="uid:1",
    )
    assert isinstance(made, BinanceClient)
    assert (made.base_url, made.timeout, made.scope, made.calls, made.clock_offset_ms) == (
        "http://127.0.0.1:9",
        (1.0, 2.0),
        "uid:1",
        0,
        0,
    )
    assert made.futures_url == "http://127.0.0.1:9"  # a sandbox serves futures on the same host
    assert KEY not in repr(made) and SECRET not in repr(made)
    with made as entered:
        assert entered is made


def test_futures_go_to_fapi_when_talking_to_binance():
    made = BinanceClient("https://api.binance.com", credentials=None)
    assert made.futures_url == "https://fapi.binance.com"
    assert BinanceClient("https://api3.binance.com").futures_url == "https://fapi.binance.com"


def test_a_base_url_must_be_http():
    with pytest.raises(ValueError):
        BinanceClient("api.binance.com")


def test_redact_strips_signature_key_header_and_key():
    line = (
        f"GET /api/v3/account?timestamp=1&recvWindow=5000&signature=145a2e79 "
        f"headers={{'X-MBX-APIKEY': '{KEY}'}} X-MBX-APIKEY: abc123 key={KEY}"
    )
    cleaned = redact(line, KEY)
    assert KEY not in cleaned and "145a2e79" not in cleaned and "abc123" not in cleaned
    assert "signature=[redacted]" in cleaned and "timestamp=1" in cleaned
    # The venue's redact does not know the key, but every 64-character key-like run goes.
    assert KEY not in BINANCE.redact(f"key {KEY} and secret {SECRET}")
    assert SECRET not in BINANCE.redact(f"key {KEY} and secret {SECRET}")
    assert "-----BEGIN" not in BINANCE.redact("-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----")


def test_the_venue_imports_nothing_of_the_project_but_the_kit():
    for source in VENUE_DIR.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in ("django", "bitsgap_clone"), (source.name, name)
                if top == "exchanges":
                    assert name.startswith(("exchanges.venues.kit", "exchanges.venues.binance")), (
                        source.name,
                        name,
                    )
    assert client_module.__name__ == "exchanges.venues.binance.client"


# --- sandbox and demo keys -----------------------------------------------------------------

SCENARIOS = (
    "demo: good key",
    "demo: ip-bound good key",
    "demo: withdraw enabled",
    "demo: ip-bound elsewhere",
    "demo: read-only",
    "demo: trading expiring soon",
    "demo: trading expired",
)


def test_demo_keys_cover_every_scenario_and_pass_validation():
    for scenario, note in BINANCE.demo_scenarios.items():
        api_key, secret = BINANCE.demo_key(scenario)
        assert note in SCENARIOS and BINANCE.validate(Credentials(api_key, secret)) == {}
    assert set(BINANCE.demo_scenarios.values()) == set(SCENARIOS)
    demo = BINANCE.demo_keys()
    notes = [note for _, _, note in demo]
    for scenario in SCENARIOS:
        assert sum(note.startswith(scenario) for note in notes) == 1, scenario
    for api_key, secret, _ in demo:
        assert BINANCE.validate(Credentials(api_key, secret)) == {}


def test_the_venue_starts_its_sandbox_on_loopback():
    from exchanges.venues.binance.sandbox import BinanceSandbox

    sandbox = BINANCE.sandbox(port=0)
    assert isinstance(sandbox, BinanceSandbox)
    with sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        with BINANCE.client(base_url=sandbox.url, credentials=None, timeout=(1.0, 2.0)) as client:
            assert abs(client.sync_clock()) < 1000
    assert set(sandbox.keys) == {key for key, _, _ in BINANCE.demo_keys()}


# --- help page and logo ---------------------------------------------------------------------

HELP = (VENUE_DIR / "help.html").read_text()


@pytest.mark.parametrize(
    "anchor",
    [
        "status-invalid",
        "status-ip-not-allowed",
        "status-expired",
        "status-incorrect-permissions",
        "status-withdraw-enabled",
        "status-temporary",
        "status-trading-expired",
        "troubleshooting",
    ],
)
def test_the_help_page_has_every_deep_link_anchor(anchor):
    assert f'id="{anchor}"' in HELP


def test_the_help_page_is_a_guide_without_inline_script_or_style():
    assert HELP.startswith('{% extends "_base.html" %}')
    assert "How to create a Binance API key for this dashboard" in HELP
    assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", HELP, re.IGNORECASE)
    for words in (
        "API Management",
        "Create API",
        "System generated",
        "Enable Reading",
        "Enable Spot &amp; Margin Trading",
        "Enable Withdrawals",
        "30 days",
        "Invalid API-key, IP, or permissions",
        "United States",
        "egress_ips",
        "None configured",
    ):
        assert words in HELP, words


def test_the_logo_is_a_small_self_contained_yellow_svg():
    path = ROOT / "static" / "img" / "binance.svg"
    raw = path.read_text()
    root = ElementTree.fromstring(raw)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "#F0B90B" in raw
    assert len(raw) < 2000
    assert "href" not in raw and "<script" not in raw and "url(" not in raw
    assert raw.count("http") == 1  # the xmlns only


@pytest.mark.django_db
def test_the_help_page_renders_through_the_app_with_and_without_egress_ips(
    client, django_user_model, settings
):
    from django.urls import reverse

    client.force_login(django_user_model.objects.create_user("guide-reader", password="x-long-pass-1"))
    url = reverse("exchanges:help-api-key", args=["binance"])
    settings.EGRESS_IPS = ["203.0.113.5", "198.51.100.2"]
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "How to create a Binance API key for this dashboard" in html
    assert "203.0.113.5 198.51.100.2" in html and "None configured" not in html
    assert reverse("exchanges:connection-add-venue", args=["binance"]) in html
    settings.EGRESS_IPS = []
    html = client.get(url).content.decode()
    assert "None configured" in html and "203.0.113.5" not in html
