"""The OKX venue: what it declares, format checks before any network call, sites and base URLs,
limits, texts, the help page and the logo. No network except the sandbox on 127.0.0.1."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from exchanges.venues.kit.errors import ErrorKind
from exchanges.venues.kit.types import Credentials, Prior
from exchanges.venues.kit.venue import Limit, Text, Venue
from exchanges.venues.okx import client as client_module
from exchanges.venues.okx.client import OkxClient, redact
from exchanges.venues.okx.client import redact as okx_redact
from exchanges.venues.okx.venue import OKX, OkxVenue

ROOT = Path(__file__).resolve().parents[3]
VENUE_DIR = ROOT / "exchanges" / "venues" / "okx"
KEY = "37c541a1-8b2d-4f0e-9a4c-10fe7a038418"
SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
PASSPHRASE = "My-Key-Pass.7"


def test_it_declares_what_the_dashboard_shows():
    assert isinstance(OKX, OkxVenue) and isinstance(OKX, Venue)
    assert (OKX.id, OKX.name, OKX.env_prefix) == ("okx", "OKX", "OKX")
    assert OKX.default_api_url == "https://www.okx.com"
    assert OKX.api_management_url == "https://www.okx.com/account/my-api"
    assert OKX.help_template == "okx/help.html"
    assert OKX.help_title == "How to create an OKX API key"
    assert OKX.uid_label == "OKX UID"
    assert OKX.logo == "img/okx.svg" and (ROOT / "static" / OKX.logo).is_file()
    assert (ROOT / "exchanges" / "venues" / OKX.help_template).is_file()
    assert 0 < len(OKX.tagline) <= 40
    assert repr(OKX) == "<Venue okx>"


def test_it_asks_for_three_credentials_and_the_site():
    fields = {field.name: field for field in OKX.credential_fields}
    assert list(fields) == ["access_key", "secret_key", "passphrase", "site"]
    assert [(f.label, f.secret) for f in fields.values()] == [
        ("API Key", False),
        ("Secret Key", True),
        ("Passphrase", True),
        ("Site", False),
    ]
    assert "passphrase you chose when creating the key on OKX" in fields["passphrase"].help
    assert fields["site"].choices == (
        ("global", "Global (www.okx.com)"),
        ("eea", "EEA (my.okx.com)"),
        ("us", "US and Australia (app.okx.com)"),
    )
    assert all(not f.choices for name, f in fields.items() if name != "site")


def test_the_checklist_names_okx_permissions_the_passphrase_the_site_and_the_14_day_rule():
    text = " ".join(OKX.checklist)
    for words in ("“Read”", "“Trade”", "“Withdraw”", "passphrase", "my.okx.com", "app.okx.com", "14 days"):
        assert words in text, words
    assert "refused" in text and "keeps it alive" in text
    assert all("<" not in line for line in OKX.checklist)  # plain text
    assert "14 days" in OKX.no_ip_binding_note and "refreshes" in OKX.no_ip_binding_note


REQUIRED_TEXTS = (
    "invalid_access_key",
    "invalid_signature",
    "invalid_passphrase",
    "wrong_environment",
    "ip_not_allowed",
    "key_expired",
    "forbidden",
    "no_permission",
    "rate_limited",
    "maintenance",
    "unavailable",
    "unknown",
    "incorrect_permissions",
    "withdraw_enabled",
    "expired",
)


@pytest.mark.parametrize("key", REQUIRED_TEXTS)
def test_every_required_text_has_a_title_a_cause_and_one_fix(key):
    text = OKX.texts[key]
    assert isinstance(text, Text)
    assert text.title and text.cause and text.fix
    assert "<" not in text.title + text.cause + text.fix
    assert text.fix.count(". ") <= 1  # one step, not a list


def test_texts_are_keyed_by_plain_strings_of_error_kinds_and_statuses():
    kinds = {kind.value for kind in ErrorKind}
    assert all(isinstance(key, str) for key in OKX.texts)
    assert set(OKX.texts) - kinds == {"incorrect_permissions", "withdraw_enabled", "expired"}
    assert OKX.texts[ErrorKind.INVALID_PASSPHRASE] is OKX.texts["invalid_passphrase"]


def test_the_texts_explain_okx_own_cases():
    unknown = OKX.texts["invalid_access_key"].cause
    for cause in ("another site", "mistyped", "deleted on OKX", "14 days without use"):
        assert cause in unknown, cause
    withdraw = OKX.texts["withdraw_enabled"]
    assert "Withdraw" in withdraw.cause and "Delete this key on OKX" in withdraw.fix
    assert "no way for us to delete" in withdraw.cause
    assert "Demo Trading" in OKX.texts["wrong_environment"].cause
    assert "not your OKX login password" in OKX.texts["invalid_passphrase"].cause
    ip = OKX.texts["ip_not_allowed"]
    assert "{ip}" in ip.fix_with_ip and "{ip}" not in ip.fix
    assert ip.fix_with_ip.format(ip="203.0.113.9").count("203.0.113.9") == 1
    assert "14 days" in OKX.texts["expired"].cause and "14 days" in OKX.texts["key_expired"].cause


# --- validate -----------------------------------------------------------------------------


def _check(api_key=KEY, secret=SECRET, passphrase=PASSPHRASE, site="global") -> dict[str, str]:
    extra = {name: value for name, value in (("passphrase", passphrase), ("site", site)) if value is not None}
    return OKX.validate(Credentials(api_key, secret, extra))


def test_a_well_formed_set_passes():
    assert _check() == {}
    assert _check(secret=SECRET.lower()) == {}  # hex either way: OKX decides
    assert _check(passphrase="a b~!@#$%^&*()_+{}|:<>?") == {}  # any printable ASCII
    for site in ("global", "eea", "us"):
        assert _check(site=site) == {}


def test_an_absent_passphrase_or_site_is_left_to_the_form():
    assert OKX.validate(Credentials(KEY, SECRET)) == {}
    assert _check(passphrase="", site="") == {}


@pytest.mark.parametrize("bad", [KEY[:-1], KEY + "a", KEY.replace("-", "_"), "short", KEY[:-1] + "g"])
def test_the_api_key_must_be_a_uuid(bad):
    errors = _check(api_key=bad)
    assert list(errors) == ["access_key"]
    assert "36 characters" in errors["access_key"] and "8-4-4-4-12" in errors["access_key"]


def test_an_upper_case_api_key_is_refused_with_the_reason():
    errors = _check(api_key=KEY.upper())
    assert "lower case" in errors["access_key"]


@pytest.mark.parametrize("bad", [SECRET[:-1], SECRET + "0", "G" * 32, "short"])
def test_the_secret_key_must_be_32_hex(bad):
    errors = _check(secret=bad)
    assert list(errors) == ["secret_key"]
    assert "32 characters, digits and letters A–F" in errors["secret_key"]


def test_swapped_keys_are_recognised_by_their_shapes():
    errors = _check(api_key=SECRET, secret=KEY)
    assert "looks like the Secret Key" in errors["access_key"]
    assert "looks like the API Key" in errors["secret_key"]
    assert "looks like the API Key" in _check(secret=KEY)["secret_key"]
    assert "looks like the Secret Key" in _check(api_key=SECRET)["access_key"]


def test_a_key_pasted_as_passphrase_is_refused():
    assert "not the passphrase" in _check(passphrase=SECRET)["passphrase"]
    assert "not the passphrase" in _check(passphrase=KEY)["passphrase"]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("access_key", KEY[:-1] + "é"),
        ("access_key", KEY[:-1] + "\u200b"),
        ("secret_key", "ключ" * 8),
        ("passphrase", "пароль-1"),
        ("passphrase", "pass\tword"),
        ("passphrase", "pass\nword"),
    ],
)
def test_non_ascii_or_unprintable_characters_are_refused(field, bad):
    values = {"access_key": KEY, "secret_key": SECRET, "passphrase": PASSPHRASE, field: bad}
    errors = _check(values["access_key"], values["secret_key"], values["passphrase"])
    assert list(errors) == [field]
    assert "characters OKX never uses" in errors[field]


def test_an_unknown_site_is_refused():
    assert _check(site="tr") == {"site": "Choose the OKX site where you created the key."}


def test_the_same_value_in_both_key_fields_is_refused():
    assert _check(secret=KEY)  # a UUID is no Secret Key
    assert _check(api_key=SECRET, secret=SECRET)


def test_validation_messages_never_echo_the_values():
    for errors in (
        _check(api_key=KEY[:30], secret=SECRET[:20]),
        _check(api_key=KEY + "é"),
        _check(passphrase=SECRET),
        _check(api_key=SECRET, secret=KEY),
    ):
        assert errors
        for message in errors.values():
            assert KEY[:20] not in message and SECRET[:20] not in message and PASSPHRASE not in message


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit", "window_ms", "shared"),
    [
        ("/api/v5/public/time", 10, 2000, True),
        ("/api/v5/account/config", 5, 2000, False),
        ("/api/v5/account/balance", 10, 2000, False),
        ("/api/v5/asset/balances", 6, 1000, False),
        ("/api/v5/finance/savings/balance", 6, 1000, False),
        ("/api/v5/asset/asset-valuation", 1, 1000, False),
        ("/api/v5/market/tickers", 20, 2000, True),
        ("/api/v5/market/ticker", 20, 2000, True),
        ("/api/v5/system/status", 1, 5000, True),
    ],
)
def test_each_endpoint_has_its_own_documented_limit(path, limit, window_ms, shared):
    rule = OKX.limit_for(path)
    assert isinstance(rule, Limit)
    assert (rule.group, rule.limit, rule.window_ms, rule.shared, rule.weight) == (
        path,
        limit,
        window_ms,
        shared,
        1,
    )


def test_unknown_paths_get_the_cautious_limit_of_their_kind():
    assert (
        OKX.limit_for("/api/v5/market/books").group == "public"
        and OKX.limit_for("/api/v5/market/books").shared
    )
    assert OKX.limit_for("/api/v5/account/positions").group == "private"
    assert not OKX.limit_for("/api/v5/account/positions").shared
    assert OKX.limit_for("/api/v5/account/config?x=1").group == "/api/v5/account/config"
    assert set(OKX.limits) >= {"/api/v5/account/config", "public", "private"}


# --- client, sites, redact -----------------------------------------------------------------


def _made(base_url: str, site: str = "global") -> OkxClient:
    return OKX.client(
        base_url=base_url,
        credentials=Credentials(KEY, SECRET, {"passphrase": PASSPHRASE, "site": site}),
        timeout=(1.0, 2.0),
        scope="uid:1",
    )


def test_client_is_an_okx_client_and_keeps_secrets_out_of_its_repr():
    made = _made("http://127.0.0.1:9/", "eea")
    assert isinstance(made, OkxClient)
    assert (made.base_url, made.site, made.timeout, made.scope, made.calls, made.clock_offset_ms) == (
        "http://127.0.0.1:9",
        "eea",
        (1.0, 2.0),
        "uid:1",
        0,
        0,
    )
    for value in (KEY, SECRET, PASSPHRASE):
        assert value not in repr(made)
    with made as entered:
        assert entered is made


@pytest.mark.parametrize(
    ("base_url", "site", "expected"),
    [
        # OKX's default: the chosen site's own host.
        ("https://www.okx.com", "global", ("https://www.okx.com", {})),
        ("https://www.okx.com", "eea", ("https://eea.okx.com", {})),
        ("https://www.okx.com", "us", ("https://us.okx.com", {})),
        # Another global host the operator chose; the regional sites keep theirs.
        ("https://openapi.okx.com", "global", ("https://openapi.okx.com", {})),
        ("https://openapi.okx.com", "us", ("https://us.okx.com", {})),
        # A proxy or the sandbox: connect there and name the site's real host.
        ("http://127.0.0.1:8080", "global", ("http://127.0.0.1:8080", {"Host": "www.okx.com"})),
        ("http://127.0.0.1:8080", "eea", ("http://127.0.0.1:8080", {"Host": "eea.okx.com"})),
        ("https://proxy.example/okx/", "us", ("https://proxy.example/okx", {"Host": "us.okx.com"})),
    ],
)
def test_the_base_url_and_the_site_decide_where_requests_go(base_url, site, expected):
    assert _made(base_url, site).route(site) == expected


def test_no_site_means_global_and_an_unknown_one_is_an_error():
    assert OkxClient(credentials=Credentials(KEY, SECRET, {"passphrase": PASSPHRASE})).site == "global"
    assert OkxClient().site == "global"
    with pytest.raises(ValueError):
        OkxClient(credentials=Credentials(KEY, SECRET, {"site": "tr"}))
    with pytest.raises(ValueError):
        OkxClient("www.okx.com")


def test_redact_strips_signing_headers_keys_and_secrets():
    line = (
        f"GET /api/v5/account/config headers={{'OK-ACCESS-KEY': '{KEY}', 'OK-ACCESS-SIGN': "
        f"'ev0iOaWdz8sTmB6Y1Pe05iM/KuC9mO+L/JnJR0SYHdw=', 'OK-ACCESS-PASSPHRASE': '{PASSPHRASE}', "
        f"'OK-ACCESS-TIMESTAMP': '2024-01-02T03:04:05.678Z'}} key={KEY} secret={SECRET}"
    )
    cleaned = redact(line)
    for value in (KEY, SECRET, PASSPHRASE, "ev0iOaWdz8sTmB6Y1Pe05iM"):
        assert value not in cleaned
    assert "'OK-ACCESS-SIGN': '[redacted]'" in cleaned and "2024-01-02T03:04:05.678Z" in cleaned
    assert okx_redact(line) == cleaned
    # The client also knows the passphrase itself, wherever it appears.
    assert PASSPHRASE not in _made("http://127.0.0.1:9").redact(f"passphrase was {PASSPHRASE}")


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
                    assert name.startswith(("exchanges.venues.kit", "exchanges.venues.okx")), (
                        source.name,
                        name,
                    )
    assert client_module.__name__ == "exchanges.venues.okx.client"


def test_no_module_of_ours_passes_500_lines():
    for name in ("client", "endpoints", "errors", "facts", "limits", "signing", "venue", "wallets"):
        assert len((VENUE_DIR / f"{name}.py").read_text().splitlines()) <= 500, name


# --- sandbox and demo keys -----------------------------------------------------------------

SCENARIOS = (
    "demo: good key",
    "demo: ip-bound good key",
    "demo: withdraw enabled",
    "demo: ip-bound elsewhere",
    "demo: read-only",
    "demo: idle 15 days",
)


def test_demo_keys_cover_every_scenario_and_pass_validation():
    assert set(OKX.demo_scenarios.values()) >= set(SCENARIOS)
    for scenario in OKX.demo_scenarios:
        api_key, secret = OKX.demo_key(scenario)
        credentials = OKX.demo_credentials(scenario)
        assert (credentials.api_key, credentials.secret) == (api_key, secret)
        assert credentials.extra["passphrase"] and credentials.extra["site"]
        assert credentials.extra["site"] == ("eea" if scenario == "other_site" else "global")
        assert OKX.validate(credentials) == {}
    notes = [note for _, _, note in OKX.demo_keys()]
    for scenario in SCENARIOS:
        assert sum(note.startswith(scenario) for note in notes) == 1, scenario
    for api_key, secret, _ in OKX.demo_keys():
        assert OKX.validate(Credentials(api_key, secret)) == {}
    with pytest.raises(KeyError):
        OKX.demo_credentials("nothing")


def test_the_venue_starts_its_sandbox_on_loopback():
    from exchanges.venues.okx.sandbox import OkxSandbox

    sandbox = OKX.sandbox(port=0)
    assert isinstance(sandbox, OkxSandbox)
    with sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        with OKX.client(base_url=sandbox.url, credentials=None, timeout=(1.0, 2.0)) as client:
            assert abs(client.sync_clock()) < 1000
        with OKX.client(
            base_url=sandbox.url, credentials=OKX.demo_credentials("good"), timeout=(1.0, 2.0)
        ) as client:
            assert client.inspect_key(Prior()).can_read
    assert set(sandbox.keys) == {key for key, _, _ in OKX.demo_keys()}


# --- help page and logo ---------------------------------------------------------------------

HELP = (VENUE_DIR / "help.html").read_text()


@pytest.mark.parametrize(
    "anchor",
    [
        "site",
        "create-key",
        "permissions",
        "passphrase",
        "ip-binding",
        "copy-keys",
        "status-invalid",
        "status-ip-not-allowed",
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
    assert "How to create an OKX API key for this dashboard" in HELP
    assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", HELP, re.IGNORECASE)
    for words in (
        "Create API key",
        "Read",
        "Trade",
        "Withdraw",
        "passphrase",
        "cannot show it",
        "my.okx.com",
        "app.okx.com",
        "14 days without",
        "API key doesn't exist",
        "Demo Trading",
        "delete it on OKX's API page",
        "egress_ips",
        "None configured",
    ):
        assert words in HELP, words
    assert HELP.count('href="#') >= 10  # the table of contents and the status entries link within


def test_the_logo_is_a_small_self_contained_black_and_white_svg():
    raw = (ROOT / "static" / "img" / "okx.svg").read_text()
    root = ElementTree.fromstring(raw)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "#000000" in raw and "#FFFFFF" in raw
    assert len(raw) < 2000
    assert "href" not in raw and "<script" not in raw and "url(" not in raw
    assert raw.count("http") == 1  # the xmlns only
    squares = root.findall(".//{http://www.w3.org/2000/svg}g/{http://www.w3.org/2000/svg}rect")
    assert len(squares) == 5  # a checker of white squares


@pytest.mark.django_db
def test_the_help_page_renders_through_the_app_with_and_without_egress_ips(
    client, django_user_model, settings
):
    from django.urls import reverse

    settings.VENUES = [*settings.VENUES, "exchanges.venues.okx.venue.OKX"]
    client.force_login(django_user_model.objects.create_user("guide-reader", password="x-long-pass-1"))
    url = reverse("exchanges:help-api-key", args=["okx"])
    settings.EGRESS_IPS = ["203.0.113.5", "198.51.100.2"]
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "How to create an OKX API key for this dashboard" in html
    assert "203.0.113.5 198.51.100.2" in html and "None configured" not in html
    assert reverse("exchanges:connection-add-venue", args=["okx"]) in html
    settings.EGRESS_IPS = []
    html = client.get(url).content.decode()
    assert "None configured" in html and "203.0.113.5" not in html
