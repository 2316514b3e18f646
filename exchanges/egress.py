"""This server's outgoing ("egress") IP addresses: the ``EGRESS_IPS`` setting, what exchanges
told us they saw, and how both compare with the addresses a key is bound to.

Pure functions and dataclasses only (no models, no Django apps): ``settings.py`` parses the
setting with ``parse_egress_ips`` at startup, ``explain`` and the templates compare with the rest.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressIpsError(ValueError):
    """``EGRESS_IPS`` holds something that is not one IP address."""


def normalise(address: str) -> str:
    """One address in its canonical form (IPv6 compressed, lower case; an IPv4-mapped IPv6
    address as its IPv4). ValueError if it is not one address."""
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def parse_egress_ips(raw: str | Iterable[str]) -> tuple[str, ...]:
    """``EGRESS_IPS`` as written (comma-separated, or already a list): every entry one IPv4 or
    IPv6 address, canonical, duplicates dropped, in the order given. Raises EgressIpsError
    naming the first entry that is not an address."""
    entries = raw.split(",") if isinstance(raw, str) else list(raw)
    parsed: list[str] = []
    for entry in entries:
        entry = str(entry).strip()
        if not entry:
            continue
        try:
            address = normalise(entry)
        except ValueError:
            hint = " (a network range: list each address instead)" if "/" in entry else ""
            raise EgressIpsError(
                f"EGRESS_IPS: {entry!r} is not an IP address{hint}. Give this server's outgoing "
                "addresses separated by commas, IPv4 like 198.51.100.7 or IPv6 like 2001:db8::7, "
                "e.g. EGRESS_IPS=198.51.100.7,2001:db8::7"
            ) from None
        if address not in parsed:
            parsed.append(address)
    return tuple(parsed)


def _as_ip(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(normalise(address))
    except ValueError:
        return None


def covered(address: str, bound: Iterable[str]) -> bool:
    """Is ``address`` one of ``bound`` (hosts, or networks such as 202.106.96.0/24)?"""
    ip = _as_ip(address)
    if ip is None:
        return False
    for entry in bound:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            return True
    return False


def _listed(addresses: Sequence[str]) -> str:
    return ", ".join(addresses)


@dataclass(frozen=True, slots=True)
class Sighting:
    """An exchange named the address it saw our request come from, in a refusal."""

    venue_id: str
    venue_name: str
    site_label: str  # the venue's site, for venues with several; "" otherwise
    ip: str
    seen_at: datetime

    @property
    def seen_by(self) -> str:
        # "<venue> <site label>": a site label carries its own parentheses.
        return f"{self.venue_name} {self.site_label}" if self.site_label else self.venue_name


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """What we can tell a user about this server's outgoing addresses, for one venue's dialog,
    guide or key facts: the configured ones (``EGRESS_IPS``), or else what exchanges saw."""

    venue_id: str
    configured: tuple[str, ...] = ()
    # What exchanges saw, this venue's first, then newest first.
    seen: tuple[Sighting, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses to bind a key to: the configured ones, else those exchanges saw."""
        if self.configured:
            return self.configured
        return tuple(dict.fromkeys(s.ip for s in self.seen))

    @property
    def learned(self) -> bool:
        return not self.configured and bool(self.seen)

    @property
    def mismatches(self) -> tuple[Sighting, ...]:
        """The latest address each exchange (and site) saw, where it is not among the configured
        ones: the server's outgoing address may have changed, or the setting is wrong."""
        if not self.configured:
            return ()
        latest: dict[tuple[str, str], Sighting] = {}
        for sighting in sorted(self.seen, key=lambda s: s.seen_at):
            latest[(sighting.venue_id, sighting.site_label)] = sighting
        return tuple(s for s in latest.values() if not covered(s.ip, self.configured))

    def copy_text(self, separator: str = " ") -> str:
        return separator.join(self.addresses)


def mismatch_note(venue_name: str, seen_ip: str | None, configured: Sequence[str], when: str = "") -> str:
    """One sentence when the address an exchange saw (``when``: on which day) is not among
    EGRESS_IPS; "" otherwise."""
    if not seen_ip or not configured:
        return ""
    seen = _as_ip(seen_ip)
    if seen is not None and covered(str(seen), configured):
        return ""
    on = f" on {when}" if when else ""
    return (
        f"{venue_name} saw {seen_ip}{on}, which is not among EGRESS_IPS ({_listed(configured)}): "
        "this server's outgoing address may have changed."
    )


@dataclass(frozen=True, slots=True)
class BindingCheck:
    """Whether the addresses a key is bound to include this server's, said in one line."""

    tone: str  # "ok" or "warn"
    text: str
    fix: str = ""


def binding_check(
    bound: Sequence[str],
    server: ServerAddresses,
    *,
    venue_name: str,
    working: bool,
) -> BindingCheck | None:
    """Compare a key's IP list with this server's addresses. None when either is unknown.

    ``working``: the venue accepted our last check with this key, so the address it saw then was
    on the list, whatever EGRESS_IPS says."""
    ours = server.addresses
    if not bound or not ours:
        return None
    inside = [ip for ip in ours if covered(ip, bound)]
    missing = [ip for ip in ours if ip not in inside]

    def whose(ips: Sequence[str], noun: str = "") -> str:
        if server.configured:
            return f"this server's{noun} ({_listed(ips)})"
        return f"the address{'es' if len(ips) > 1 else ''} {venue_name} saw us use ({_listed(ips)})"

    count = f"{len(bound)} IP{'s' if len(bound) != 1 else ''}"
    if not missing:
        return BindingCheck("ok", f"Bound to {count}, including {whose(inside)}")
    add = f"On {venue_name}, edit the key and add {_listed(missing)} to its IP list."
    if inside:
        return BindingCheck(
            "warn",
            f"Bound to {count}, including {_listed(inside)} but not {whose(missing, ' other address')}: "
            "checks sent from it will fail",
            add,
        )
    noun = " address" if len(missing) == 1 else " addresses"
    if len(bound) <= 3:
        head = f"Bound to {_listed(bound)} — not {whose(missing, noun)}"
    else:
        head = f"Bound to {count}, none of them {whose(missing, noun)}"
    if working:
        # The venue accepted the key from an address on its list: either the server also sends
        # from another address, or EGRESS_IPS is out of date.
        if server.configured:
            add += (
                f" {venue_name} accepted our last check, so this server also sends from an address "
                f"on the list: if it no longer uses {_listed(missing)}, correct EGRESS_IPS instead."
            )
        return BindingCheck("warn", f"{head}: checks sent from it will fail", add)
    return BindingCheck("warn", f"{head}: checks will fail", add)
