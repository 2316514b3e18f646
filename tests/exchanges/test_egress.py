"""This server's outgoing addresses: the EGRESS_IPS setting (parsed and checked at startup), the
comparison with what an exchange saw and with the addresses a key is bound to, and each venue's
rule for keys without an IP binding."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchanges import registry
from exchanges.egress import (
    EgressIpsError,
    ServerAddresses,
    Sighting,
    binding_check,
    covered,
    mismatch_note,
    parse_egress_ips,
)

ROOT = Path(__file__).resolve().parents[2]
DEC_1 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
NOV_20 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _seen(
    ip: str, venue_id: str = "okx", name: str = "OKX", site: str = "", at: datetime = DEC_1
) -> Sighting:
    return Sighting(venue_id, name, site, ip, at)


# --- the setting --------------------------------------------------------------------------------


def test_egress_ips_takes_ipv4_and_ipv6_separated_by_commas_in_their_canonical_form():
    assert parse_egress_ips(" 198.51.100.7, 2001:DB8:0:0::7 ,,198.51.100.8 ") == (
        "198.51.100.7",
        "2001:db8::7",
        "198.51.100.8",
    )


def test_egress_ips_drops_duplicates_and_writes_a_mapped_ipv6_address_as_ipv4():
    assert parse_egress_ips("198.51.100.7,::ffff:198.51.100.7,198.51.100.7") == ("198.51.100.7",)


def test_no_egress_ips_is_an_empty_tuple_and_a_list_is_accepted_as_well():
    assert parse_egress_ips("") == ()
    assert parse_egress_ips("  ") == ()
    assert parse_egress_ips(["203.0.113.5", "2001:db8::1"]) == ("203.0.113.5", "2001:db8::1")


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("198.51.100.7,example.com", "'example.com'"),
        ("198.51.100.300", "'198.51.100.300'"),
        ("198.51.100.7 198.51.100.8", "'198.51.100.7 198.51.100.8'"),  # a space is not a comma
        ("2001:db8::7::1", "'2001:db8::7::1'"),
    ],
)
def test_an_entry_that_is_not_an_address_is_named_with_the_expected_form(raw, named):
    with pytest.raises(EgressIpsError) as caught:
        parse_egress_ips(raw)
    message = str(caught.value)
    assert message.startswith(f"EGRESS_IPS: {named} is not an IP address")
    assert "separated by commas" in message and "198.51.100.7" in message and "2001:db8::7" in message


def test_a_network_range_is_refused_with_the_advice_to_list_each_address():
    with pytest.raises(EgressIpsError, match=r"'198\.51\.100\.0/24' is not an IP address \(a network range"):
        parse_egress_ips("198.51.100.0/24")


def _manage_check(egress_ips: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(EGRESS_IPS=egress_ips, DEBUG="1", ENV_FILE="/nonexistent")
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_server_refuses_to_start_with_a_bad_egress_ips_and_says_which_entry():
    result = _manage_check("198.51.100.7,not-an-ip")
    assert result.returncode != 0
    assert "ImproperlyConfigured: EGRESS_IPS: 'not-an-ip' is not an IP address" in result.stderr


def test_the_server_starts_with_good_egress_ips():
    result = _manage_check("198.51.100.7,2001:db8::7")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# --- comparisons --------------------------------------------------------------------------------


def test_an_address_is_covered_by_itself_or_by_a_network_of_the_key_list():
    assert covered("198.51.100.7", ["203.0.113.1", "198.51.100.7"])
    assert covered("202.106.96.9", ["202.106.96.0/24"])
    assert covered("2001:db8::7", ["2001:DB8:0::7"])
    assert covered("::ffff:198.51.100.7", ["198.51.100.7"])
    assert not covered("198.51.100.8", ["198.51.100.7", "not an ip", "2001:db8::/32"])
    assert not covered("garbage", ["0.0.0.0/0"])


def test_a_key_bound_to_this_servers_addresses_says_so():
    server = ServerAddresses("okx", configured=("198.51.100.7",))
    check = binding_check(["203.0.113.1", "198.51.100.7"], server, venue_name="OKX", working=True)
    assert check.tone == "ok"
    assert check.text == "Bound to 2 IPs, including this server's (198.51.100.7)"
    assert check.fix == ""


def test_a_key_bound_elsewhere_warns_that_checks_will_fail_and_says_what_to_add():
    server = ServerAddresses("okx", configured=("198.51.100.7",))
    check = binding_check(["203.0.113.1"], server, venue_name="OKX", working=False)
    assert check.tone == "warn"
    assert check.text == "Bound to 203.0.113.1 — not this server's address (198.51.100.7): checks will fail"
    assert check.fix == "On OKX, edit the key and add 198.51.100.7 to its IP list."


def test_a_key_bound_elsewhere_that_still_worked_points_at_egress_ips_too():
    server = ServerAddresses("okx", configured=("198.51.100.7",))
    check = binding_check(["127.0.0.1", "::1"], server, venue_name="OKX", working=True)
    assert check.tone == "warn"
    assert check.text.startswith("Bound to 127.0.0.1, ::1 — not this server's address (198.51.100.7)")
    assert "OKX accepted our last check" in check.fix and "correct EGRESS_IPS" in check.fix


def test_a_key_missing_one_of_several_server_addresses_names_the_missing_one():
    server = ServerAddresses("okx", configured=("198.51.100.7", "198.51.100.8"))
    check = binding_check(["198.51.100.7"], server, venue_name="OKX", working=True)
    assert check.tone == "warn"
    assert check.text == (
        "Bound to 1 IP, including 198.51.100.7 but not this server's other address (198.51.100.8): "
        "checks sent from it will fail"
    )
    assert check.fix == "On OKX, edit the key and add 198.51.100.8 to its IP list."


def test_a_long_key_list_is_counted_rather_than_listed():
    server = ServerAddresses("okx", configured=("198.51.100.7",))
    bound = [f"203.0.113.{n}" for n in range(1, 6)]
    check = binding_check(bound, server, venue_name="OKX", working=False)
    assert check.text == (
        "Bound to 5 IPs, none of them this server's address (198.51.100.7): checks will fail"
    )


def test_without_egress_ips_the_address_the_venue_saw_is_compared_and_named_as_such():
    server = ServerAddresses("okx", seen=(_seen("203.0.113.9"),))
    check = binding_check(["203.0.113.9"], server, venue_name="OKX", working=True)
    assert check.text == "Bound to 1 IP, including the address OKX saw us use (203.0.113.9)"
    elsewhere = binding_check(["203.0.113.1"], server, venue_name="OKX", working=False)
    assert elsewhere.text == (
        "Bound to 203.0.113.1 — not the address OKX saw us use (203.0.113.9): checks will fail"
    )
    assert "EGRESS_IPS" not in elsewhere.fix


def test_nothing_is_said_when_the_key_or_this_servers_addresses_are_unknown():
    assert (
        binding_check(
            [], ServerAddresses("okx", configured=("198.51.100.7",)), venue_name="OKX", working=True
        )
        is None
    )
    assert binding_check(["203.0.113.1"], ServerAddresses("okx"), venue_name="OKX", working=True) is None


def test_configured_addresses_win_over_those_seen_and_seen_ones_are_offered_without_them():
    seen = (_seen("203.0.113.9"), _seen("203.0.113.9", "htx", "HTX"), _seen("203.0.113.10", at=NOV_20))
    assert ServerAddresses("okx", configured=("198.51.100.7",), seen=seen).addresses == ("198.51.100.7",)
    learned = ServerAddresses("okx", seen=seen)
    assert learned.learned and learned.addresses == ("203.0.113.9", "203.0.113.10")
    assert learned.copy_text(",") == "203.0.113.9,203.0.113.10"
    assert learned.mismatches == ()  # nothing configured: nothing to disagree with


def test_only_the_latest_address_each_venue_and_site_saw_can_disagree_with_egress_ips():
    seen = (
        _seen("198.51.100.7", at=DEC_1),  # OKX now sees the configured address...
        _seen("203.0.113.10", at=NOV_20),  # ...after an old one: settled, not a mismatch
        _seen("203.0.113.9", site="EEA (my.okx.com)", at=NOV_20),
        _seen("203.0.113.9", "htx", "HTX", at=DEC_1),
    )
    server = ServerAddresses("okx", configured=("198.51.100.7",), seen=seen)
    assert {(s.venue_id, s.site_label, s.ip) for s in server.mismatches} == {
        ("okx", "EEA (my.okx.com)", "203.0.113.9"),
        ("htx", "", "203.0.113.9"),
    }
    assert server.mismatches[0].seen_by in ("OKX EEA (my.okx.com)", "HTX")


def test_the_mismatch_note_says_plainly_what_the_venue_saw_and_what_is_configured():
    assert mismatch_note("OKX", "203.0.113.9", ["198.51.100.7"], "1 Dec 2026") == (
        "OKX saw 203.0.113.9 on 1 Dec 2026, which is not among EGRESS_IPS (198.51.100.7): this "
        "server's outgoing address may have changed."
    )
    assert mismatch_note("OKX", "198.51.100.7", ["198.51.100.7"]) == ""
    assert mismatch_note("OKX", "::ffff:198.51.100.7", ["198.51.100.7"]) == ""
    assert mismatch_note("OKX", None, ["198.51.100.7"]) == ""
    assert mismatch_note("OKX", "203.0.113.9", []) == ""


# --- each venue's rule for keys without an IP binding ------------------------------------------


@pytest.mark.parametrize("venue", [pytest.param(v, id=v.id) for v in registry.venues()])
def test_every_venue_declares_its_rule_for_unbound_keys_as_its_own_texts_state_it(venue):
    rule = venue.unbound_key_rule
    assert rule is not None and rule.days > 0
    line = rule.line(venue.name)
    assert line.startswith(f"Without an {rule.term}, {venue.name} ")
    assert f"after {rule.days} days" in line and line.endswith("is exempt.")
    # The same number of days as the venue's own note in "What <venue> told us about this key".
    assert f"{rule.days} days" in venue.no_ip_binding_note
    assert venue.ip_list_separator in (",", " ")


def test_the_rules_are_those_of_each_venues_facts_file():
    lines = {venue.id: venue.unbound_key_rule.line(venue.name) for venue in registry.venues()}
    assert lines["htx"] == (
        "Without an IP binding, HTX deactivates a key after 90 days; a key bound to this server's "
        "addresses is exempt."
    )
    assert "removes the trading permission from a key after 30 days;" in lines["binance"]
    assert lines["binance"].startswith("Without an IP restriction,")
    assert "deletes a key that can trade after 14 days without use;" in lines["okx"]
    assert "makes a key invalid after 90 days;" in lines["bybit"]


# --- the failure explanation --------------------------------------------------------------------


def test_an_ip_refusal_naming_no_address_lists_egress_ips_in_its_fix(settings):
    from exchanges.explain import explain

    settings.EGRESS_IPS = ["198.51.100.7", "2001:db8::7"]
    bybit = registry.get("bybit")
    detail = "10010: Unmatched IP, please check your API key's bound IP addresses."
    text = explain("ip_not_allowed", "ip_not_allowed", detail, venue=bybit)
    assert text.fix.endswith("This server's addresses: 198.51.100.7, 2001:db8::7.")
    assert "EGRESS_IPS" not in text.cause  # the venue named nothing to disagree with
    settings.EGRESS_IPS = []
    assert (
        "This server's addresses" not in explain("ip_not_allowed", "ip_not_allowed", detail, venue=bybit).fix
    )


def test_an_ip_refusal_naming_an_address_keeps_the_venues_fix_and_notes_a_disagreement(settings):
    from exchanges.explain import explain

    settings.EGRESS_IPS = ["198.51.100.7"]
    htx = registry.get("htx")
    detail = "api-signature-not-valid: Signature not valid: Incorrect IP address [IP地址错误]:203.0.113.9"
    text = explain("ip_not_allowed", "ip_not_allowed", detail, venue=htx)
    assert "add 203.0.113.9 (the address HTX saw our request come from)" in text.fix
    assert "This server's addresses" not in text.fix
    assert text.cause.endswith(
        "HTX saw 203.0.113.9, which is not among EGRESS_IPS (198.51.100.7): this server's outgoing "
        "address may have changed."
    )
