"""The Bybit venue: what it declares, format checks before any network call, sites and base URLs,
limits, texts, the help page and the logo. No network (but the sandbox on loopback)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from exchanges.venues.bybit import client as client_module
from exchanges.venues.bybit.client import BybitClient, redact, resolve
from exchanges.venues.bybit.client import redact as bybit_redact
from exchanges.venues.bybit.venue import BYBIT, BybitVenue
from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials
from exchanges.venues.kit.venue import Limit, Text, Venue

ROOT = Path(__file__).resolve().parents[3]
VENUE_DIR = ROOT / "exchanges" / "venues" / "bybit"
KEY = "Tq7Wm2Hx9KpL4sRv8N"
SECRET = "c3Fj8Qz1Lw6Yp0Rt5Mv2Nb7Xk4Hd9Gs1Ae6U"
SITE_HOSTS = {
    "global": "api.bybit.com",
    "nl": "api.bybit.nl",
    "tr": "api.bybit.tr",
    "kz": "api.bybit.kz",
    "ge": "api.bybitgeorgia.ge",
    "ae": "api.bybit.ae",
    "id": "api.bybit.id",
    "jp": "api.manepa.jp",
}


def test_it_declares_what_the_dashboard_shows():
    assert isinstance(BYBIT, BybitVenue) and isinstance(BYBIT, Venue)
    assert (BYBIT.id, BYBIT.name, BYBIT.env_prefix) == ("bybit", "Bybit", "BYBIT")
    assert BYBIT.default_api_url == "https://api.bybit.com"
    assert BYBIT.api_management_url == "https://www.bybit.com/app/user/api-management"
    assert BYBIT.help_template == "bybit/help.html"
    assert BYBIT.help_title == "How to create a Bybit API key"
    assert BYBIT.uid_label == "Bybit UID"
    assert BYBIT.logo == "img/bybit.svg" and (ROOT / "static" / BYBIT.logo).is_file()
    assert (ROOT / "exchanges" / "venues" / BYBIT.help_template).is_file()
    assert 0 < len(BYBIT.tagline) <= 60
    assert repr(BYBIT) == "<Venue bybit>"


def test_the_credentials_are_key_secret_and_the_site_global_first_without_eu():
    fields = {field.name: field for field in BYBIT.credential_fields}
    assert list(fields) == ["access_key", "secret_key", "site"]
    assert (fields["access_key"].label, fields["secret_key"].label, fields["site"].label) == (
        "API Key",
        "Secret Key",
        "Site",
    )
    assert [f.secret for f in fields.values()] == [False, True, False]
    choices = fields["site"].choices
    assert choices[0] == ("global", "Global (bybit.com)")
    assert [value for value, _ in choices] == list(SITE_HOSTS)
    assert dict(choices)["nl"] == "Netherlands (bybit.nl)" and dict(choices)["jp"] == "Japan (manepa.jp)"
    assert "eu" not in dict(choices)
    assert not fields["access_key"].choices and not fields["secret_key"].choices


def test_the_checklist_names_bybit_words_and_the_expiry_rules():
    text = " ".join(BYBIT.checklist)
    for words in ("System-generated", "Read-Write", "SPOT", "Withdrawal", "site", "90 days", "7 days"):
        assert words in text, words
    assert all("<" not in line for line in BYBIT.checklist)
    note = BYBIT.no_ip_binding_note
    assert "90 days" in note and "7 days" in note and "password" in note and "permanent" in note


REQUIRED_TEXTS = (
    "withdraw_enabled",
    "incorrect_permissions",
    "invalid_access_key",
    "invalid_signature",
    "key_expired",
    "ip_not_allowed",
    "no_permission",
    "rate_limited",
    "maintenance",
    "unavailable",
    "restricted_location",
    "unknown",
)


@pytest.mark.parametrize("key", REQUIRED_TEXTS)
def test_every_required_text_has_a_title_a_cause_and_one_fix(key):
    text = BYBIT.texts[key]
    assert isinstance(text, Text)
    assert text.title and text.cause and text.fix
    assert "<" not in text.title + text.cause + text.fix
    assert text.fix.count(". ") <= 1  # one step, not a list


def test_texts_are_keyed_by_plain_strings_and_use_bybit_words():
    kinds = {kind.value for kind in ErrorKind}
    assert all(isinstance(key, str) for key in BYBIT.texts)
    assert {k for k in BYBIT.texts if k not in kinds} == {"withdraw_enabled", "incorrect_permissions"}
    invalid = BYBIT.texts["invalid_access_key"]
    assert "site" in invalid.cause and "bybit.nl" in invalid.cause and "Site" in invalid.fix
    assert "90 days" in BYBIT.texts["key_expired"].cause and "7 days" in BYBIT.texts["key_expired"].cause
    ip = BYBIT.texts["ip_not_allowed"]
    assert "{ip}" in ip.fix_with_ip and ip.fix_with_ip.format(ip="203.0.113.9").count("203.0.113.9") == 2
    assert "Read-Only" in BYBIT.texts["incorrect_permissions"].cause
    assert "Withdrawal" in BYBIT.texts["withdraw_enabled"].cause
    assert "United States" in BYBIT.texts["restricted_location"].cause
    assert "600" in BYBIT.texts["rate_limited"].cause


# --- validate -----------------------------------------------------------------------------


def _check(api_key: str, secret: str, **extra: str) -> dict[str, str]:
    return BYBIT.validate(Credentials(api_key, secret, extra))


def test_a_well_formed_pair_passes_on_every_offered_site():
    assert _check(KEY, SECRET) == {}
    for site in SITE_HOSTS:
        assert _check(KEY, SECRET, site=site) == {}


@pytest.mark.parametrize(
    ("api_key", "secret", "field", "words"),
    [
        (KEY[:17], SECRET, "access_key", "18 letters and digits; this one is 17 characters"),
        (KEY + "A", SECRET, "access_key", "this one is 19 characters"),
        (KEY, SECRET[:35], "secret_key", "36 letters and digits; this one is 35 characters"),
        (KEY[:-1] + "-", SECRET, "access_key", "this one contains other characters"),
        (KEY, "A" * 64, "secret_key", "this one is 64 characters"),
    ],
)
def test_lengths_and_characters_are_checked_and_named(api_key, secret, field, words):
    errors = _check(api_key, secret)
    assert list(errors) == [field] and words in errors[field]


def test_a_swapped_pair_is_detected_by_its_lengths():
    errors = _check(SECRET, KEY)
    assert list(errors) == ["__all__"] and "swapped" in errors["__all__"]


@pytest.mark.parametrize("bad", [KEY[:-1] + "é", KEY[:-1] + "\u200b", "Ａ" * 18])
def test_non_ascii_is_refused(bad):
    assert "characters Bybit never uses" in _check(bad, SECRET)["access_key"]


def _rsa_pem() -> str:
    return (
        generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


@pytest.mark.parametrize(
    "make",
    [
        _rsa_pem,
        lambda: "".join(_rsa_pem().split()),  # as the one-line form field leaves it
        lambda: "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_an_rsa_private_key_pasted_as_secret_is_refused_by_name(make):
    message = _check(KEY, make())["secret_key"]
    assert "RSA" in message and "Self-generated" in message and "System-generated" in message


def test_the_same_value_in_both_fields_is_refused_by_its_length():
    assert list(_check(KEY, KEY)) == ["secret_key"]  # 18 characters is no Secret Key
    assert list(_check(SECRET, SECRET)) == ["access_key"]  # 36 characters is no API Key


def test_the_site_must_be_one_offered_and_eu_is_explained():
    assert "EU accounts cannot create ordinary API keys" in _check(KEY, SECRET, site="eu")["site"]
    assert "Choose the Bybit site" in _check(KEY, SECRET, site="mars")["site"]


def test_validation_messages_never_echo_the_value():
    for errors in (_check(KEY[:10], SECRET[:20]), _check(KEY + "é", SECRET), _check(SECRET, KEY)):
        for message in errors.values():
            assert KEY[:10] not in message and SECRET[:20] not in message


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit", "window", "shared"),
    [
        ("/v5/user/query-api", 10, 1000, False),
        ("/v5/account/wallet-balance", 50, 1000, False),
        ("/v5/account/info", 50, 1000, False),
        ("/v5/asset/transfer/query-account-coins-balance", 5, 1000, False),
        ("/v5/asset/asset-overview", 50, 1000, False),
        ("/v5/user/get-member-type", 10, 1000, False),
        ("/v5/market/time", 600, 5000, True),
        ("/v5/market/tickers", 600, 5000, True),
        ("/v5/market/instruments-info", 600, 5000, True),
        ("/v5/system/status", 600, 5000, True),
    ],
)
def test_signed_endpoints_count_per_uid_and_public_ones_per_ip(path, limit, window, shared):
    rule = BYBIT.limit_for(path)
    assert isinstance(rule, Limit)
    assert (rule.limit, rule.window_ms, rule.shared, rule.weight) == (limit, window, shared, 1)
    # Per UID, per endpoint: each signed endpoint its own window; every public one one IP budget.
    assert rule.group == ("ip" if shared else path)


def test_unknown_paths_get_a_cautious_limit():
    assert BYBIT.limit_for("/v5/market/kline").shared
    other = BYBIT.limit_for("/v5/order/realtime")
    assert (other.limit, other.window_ms, other.shared) == (5, 1000, False)
    assert set(BYBIT.limits) >= {"/v5/user/query-api", "ip"}


# --- sites and base URLs ------------------------------------------------------------------


@pytest.mark.parametrize(("site", "host"), SITE_HOSTS.items())
def test_the_default_url_goes_to_the_sites_own_host(site, host):
    assert resolve("https://api.bybit.com", site) == (f"https://{host}", None)
    assert resolve("https://api.bybit.com/", site) == (f"https://{host}", None)


@pytest.mark.parametrize(("site", "host"), SITE_HOSTS.items())
def test_another_url_is_used_and_the_site_named_in_the_host_header(site, host):
    assert resolve("http://127.0.0.1:9000", site) == ("http://127.0.0.1:9000", host)
    assert resolve("https://bybit-proxy.internal/x/", site) == ("https://bybit-proxy.internal/x", host)


def test_another_bybit_environment_is_used_as_it_is():
    assert resolve("https://api-testnet.bybit.com", "global") == ("https://api-testnet.bybit.com", None)
    assert resolve("https://api.bytick.com", "global") == ("https://api.bytick.com", None)


def test_client_takes_the_site_from_the_credentials_and_keeps_secrets_out_of_its_repr():
    made = BYBIT.client(
        base_url="https://api.bybit.com",
        credentials=Credentials(KEY, SECRET, {"site": "tr"}),
        timeout=(1.0, 2.0),
        scope="uid:1",
    )
    assert isinstance(made, BybitClient)
    assert (made.base_url, made.host_header, made.site, made.timeout, made.scope) == (
        "https://api.bybit.tr",
        None,
        "tr",
        (1.0, 2.0),
        "uid:1",
    )
    assert (made.calls, made.clock_offset_ms, made.recv_window) == (0, 0, 5000)
    assert KEY not in repr(made) and SECRET not in repr(made)
    with made as entered:
        assert entered is made
    public = BYBIT.client(base_url="http://127.0.0.1:9/", credentials=None, timeout=(1.0, 2.0))
    assert (public.base_url, public.host_header, public.site) == (
        "http://127.0.0.1:9",
        "api.bybit.com",
        "global",
    )


def test_a_base_url_must_be_http():
    with pytest.raises(ValueError):
        BybitClient("api.bybit.com")


def test_redact_strips_sign_and_key_headers_and_key_shaped_values():
    line = (
        f"GET /v5/user/query-api headers={{'X-BAPI-API-KEY': '{KEY}', 'X-BAPI-SIGN': 'abc123', "
        f"'X-BAPI-TIMESTAMP': '1767225600000'}} X-BAPI-SIGN: def456 key={KEY}"
    )
    cleaned = redact(line, KEY)
    assert KEY not in cleaned and "abc123" not in cleaned and "def456" not in cleaned
    assert "1767225600000" in cleaned and "X-BAPI-SIGN" in cleaned
    # The venue's redact does not know the key, but every key-, secret- or signature-shaped run goes.
    signature = "f7680854b5eb109ea3db51baddff09f26c2cdda30fbcedfd582ec12a1b6f0a17"
    cleaned = bybit_redact(f"key {KEY} secret {SECRET} sig {signature} at 1767225600000")
    assert KEY not in cleaned and SECRET not in cleaned and signature not in cleaned
    assert "1767225600000" in cleaned and "internationalisation" in bybit_redact("internationalisation")
    assert "-----BEGIN" not in bybit_redact("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----")


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
                    assert name.startswith(("exchanges.venues.kit", "exchanges.venues.bybit")), (
                        source.name,
                        name,
                    )
    assert client_module.__name__ == "exchanges.venues.bybit.client"


def test_our_modules_stay_short():
    for name in ("client", "errors", "facts", "wallets", "limits", "signing", "endpoints", "venue"):
        assert len((VENUE_DIR / f"{name}.py").read_text().splitlines()) <= 500, name


# --- sandbox and demo keys -----------------------------------------------------------------

SCENARIOS = {
    "good": "demo: good key",
    "withdraw": "demo: withdraw enabled",
    "read_only": "demo: read-only",
    "ip_elsewhere": "demo: ip-bound elsewhere",
    "ip_bound_here": "demo: ip-bound good key",
    "expired": "demo: expired",
}


def test_demo_keys_cover_every_scenario_and_pass_validation():
    assert BYBIT.demo_scenarios.items() >= SCENARIOS.items()
    notes = [note for _, _, note in BYBIT.demo_keys()]
    for scenario, prefix in SCENARIOS.items():
        api_key, secret = BYBIT.demo_key(scenario)
        assert BYBIT.validate(Credentials(api_key, secret)) == {}
        assert sum(note.startswith(prefix) for note in notes) == 1, scenario
    for api_key, secret, _ in BYBIT.demo_keys():
        assert BYBIT.validate(Credentials(api_key, secret)) == {}


def test_the_venue_starts_its_sandbox_on_loopback():
    from exchanges.venues.bybit.sandbox import BybitSandbox

    sandbox = BYBIT.sandbox(port=0)
    assert isinstance(sandbox, BybitSandbox)
    with sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        with BYBIT.client(base_url=sandbox.url, credentials=None, timeout=(1.0, 2.0)) as client:
            assert abs(client.sync_clock()) < 1000
            assert client.prices()["BTCUSDT"] > 0
    assert set(sandbox.keys) == {key for key, _, _ in BYBIT.demo_keys()}


# --- help page and logo ---------------------------------------------------------------------

HELP = (VENUE_DIR / "help.html").read_text()


@pytest.mark.parametrize(
    "anchor",
    [
        "site",
        "create-key",
        "permissions",
        "ip-restriction",
        "copy-keys",
        "connect",
        "status-invalid",
        "status-ip-not-allowed",
        "status-expires-soon",
        "status-expired",
        "status-incorrect-permissions",
        "status-withdraw-enabled",
        "status-temporary",
        "troubleshooting",
    ],
)
def test_the_help_page_has_every_deep_link_anchor(anchor):
    assert f'id="{anchor}"' in HELP


def test_the_help_page_is_a_guide_without_inline_script_or_style():
    assert HELP.startswith('{% extends "_base.html" %}')
    assert "How to create a Bybit API key for this dashboard" in HELP
    assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", HELP, re.IGNORECASE)
    for words in (
        "API Management",
        "Create New Key",
        "System-generated API Keys",
        "Read-Write",
        "SPOT",
        "Withdrawal",
        "90 days",
        "7 days after you change your Bybit password",
        "never expires",
        "bybit.nl",
        "Bybit EU",
        "cannot be connected",
        "United States",
        "Mainland China",
        "Funding Account",
        "egress_ips",
        "None configured",
    ):
        assert words in HELP, words


def test_the_logo_is_a_small_self_contained_svg_with_bybit_orange():
    raw = (ROOT / "static" / "img" / "bybit.svg").read_text()
    root = ElementTree.fromstring(raw)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "#F7A600" in raw and "BYB" in raw
    assert len(raw) < 2000
    assert "href" not in raw and "<script" not in raw and "url(" not in raw
    assert raw.count("http") == 1  # the xmlns only


@pytest.mark.django_db
def test_the_help_page_renders_through_the_app_with_and_without_egress_ips(
    client, django_user_model, settings
):
    from django.urls import reverse

    settings.VENUES = [*settings.VENUES, "exchanges.venues.bybit.venue.BYBIT"]
    client.force_login(django_user_model.objects.create_user("guide-reader", password="x-long-pass-1"))
    url = reverse("exchanges:help-api-key", args=["bybit"])
    settings.EGRESS_IPS = ["203.0.113.5", "198.51.100.2"]
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "How to create a Bybit API key for this dashboard" in html
    assert "203.0.113.5 198.51.100.2" in html and "None configured" not in html
    assert reverse("exchanges:connection-add-venue", args=["bybit"]) in html
    settings.EGRESS_IPS = []
    html = client.get(url).content.decode()
    assert "None configured" in html and "203.0.113.5" not in html
