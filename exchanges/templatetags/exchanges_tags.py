from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from django import template
from django.conf import settings
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.defaultfilters import floatformat
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from exchanges import formatting, row_cache, selectors
from exchanges.egress import BindingCheck, ServerAddresses, Sighting, binding_check, mismatch_note
from exchanges.explain import EXPIRY_WARNING_DAYS, Explanation, explain
from exchanges.models import ExchangeConnection, Status
from exchanges.selectors import balance_counts

register = template.Library()

_ICONS = {"ok": "✓", "pending": "", "warn": "!", "error": "✕"}
_PK_PLACEHOLDER = 9081726354453627189


@lru_cache(maxsize=128)
def _pk_route(viewname: str, script_prefix: str, urlconf: str | None) -> tuple[str, str]:
    """The URL of `viewname` around its one integer argument, reversed once."""
    url = reverse(viewname, urlconf=urlconf, args=[_PK_PLACEHOLDER])
    head, placeholder, tail = url.partition(str(_PK_PLACEHOLDER))
    if not placeholder:
        raise ValueError(f"{viewname} does not take one integer argument")
    return head, tail


@receiver(setting_changed)
def _routes_changed(*, setting: str, **kwargs) -> None:
    if setting == "ROOT_URLCONF":
        _pk_route.cache_clear()


@register.simple_tag
def pk_url(viewname: str, pk: int) -> str:
    """`{% url viewname pk %}` for a route whose one argument is an integer (`<int:pk>`), the
    same URL at a fraction of the cost: {% url %} resolves the route on every call (~40 µs),
    and a row of My Exchanges has eight."""
    head, tail = _pk_route(viewname, get_script_prefix(), get_urlconf())
    return f"{head}{int(pk)}{tail}"


@register.simple_tag(takes_context=True)
def connection_rows(context, connections) -> str:
    """My Exchanges' rows, each as _connection_row.html renders it, kept per state
    (exchanges.row_cache)."""
    return row_cache.render_rows(
        connections,
        request=context.get("request"),
        user=_user(context),
        stale_after=context.get("stale_after"),
        csrf_token=context.get("csrf_token"),
    )


@register.filter
def usdt(value: Decimal | None) -> str:
    return formatting.usdt(value)


@register.filter
def btc(value: Decimal | None) -> str:
    return formatting.btc(value)


@register.filter
def moment(value) -> str:
    """ "1 Dec 2026, 23:41 UTC"."""
    return formatting.moment(value)


@register.filter
def day(value) -> str:
    return formatting.day(value)


@register.simple_tag(takes_context=True)
def ago(context, value, testid: str = "") -> str:
    """A relative time ("5 minutes ago") with the absolute one in its datetime and title. In a
    row kept by exchanges.row_cache the relative part is a hole, filled on every request."""
    if value is None:
        return ""
    return format_html(
        '<time datetime="{}" title="{}"{}>{}</time>',
        value.isoformat(),
        formatting.moment(value),
        format_html(' data-testid="{}"', testid) if testid else "",
        row_cache.ago_hole(value) if context.get(row_cache.HOLES) else naturaltime(value),
    )


def _user(context):
    request = context.get("request")
    return context.get("user") or getattr(request, "user", None)


@register.simple_tag(takes_context=True)
def shown_unit(context, total_btc) -> str:
    """The unit values are shown in: the user's choice, USDT where no BTC value is known."""
    return formatting.unit_for(_user(context), total_btc)


@register.simple_tag(takes_context=True)
def money(context, value_usdt, value_btc, unit: str = "") -> str:
    """An amount in `unit` (else the user's choice): "0.01234567 BTC", "1,234.56 USDT"."""
    return formatting.money(value_usdt, value_btc, unit or formatting.unit_for(_user(context)))


@register.filter
def in_unit(value: Decimal | None, unit: str) -> str:
    """A value already in `unit`, formatted by that unit's rule."""
    return formatting.btc(value) if unit == formatting.BTC else formatting.usdt(value)


@register.filter
def connection_title(connection: ExchangeConnection) -> str:
    return formatting.connection_title(connection)


@register.filter
def subtitle_parts(connection: ExchangeConnection) -> list[str]:
    return formatting.connection_subtitle_parts(connection)


@register.filter
def counted(connection: ExchangeConnection) -> bool:
    """Its balance is live and counts in the portfolio (selectors.balance_counts)."""
    return balance_counts(connection)


@register.filter
def explanation(connection: ExchangeConnection) -> Explanation:
    return explain(connection.status, connection.error_kind, connection.error_detail, venue=connection.venue)


@register.simple_tag
def status_badge(connection: ExchangeConnection) -> str:
    e = explain(connection.status, connection.error_kind, venue=connection.venue)
    label, tone = connection.get_status_display(), e.tone
    if connection.status == Status.CONNECTED:
        # The whole key's expiry first (nothing works after it), then the trading right's.
        if (
            connection.key_expires_at
            and formatting.days_left(connection.key_expires_at) <= EXPIRY_WARNING_DAYS
        ):
            label, tone = f"Expires in {formatting.days_left(connection.key_expires_at)} days", "warn"
        elif (
            connection.trading_expires_at
            and formatting.days_left(connection.trading_expires_at) <= EXPIRY_WARNING_DAYS
        ):
            label, tone = (
                f"Trading expires in {formatting.days_left(connection.trading_expires_at)} days",
                "warn",
            )
    spinner = mark_safe('<span class="spinner" aria-hidden="true"></span>') if tone == "pending" else ""
    return format_html(
        '<span class="badge badge-{}" data-testid="status">{}<span aria-hidden="true">{}</span> {}</span>',
        tone,
        spinner,
        _ICONS[tone],
        label,
    )


@register.filter
def split_commas(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


@register.filter
def skew(milliseconds: int, venue_name: str = "the exchange") -> str:
    """How far our clock is from the venue's; signing corrects for it either way."""
    if abs(milliseconds) < 1000:
        return f"In sync with {venue_name} (within {abs(milliseconds)} ms)"
    seconds = abs(milliseconds) / 1000
    direction = "behind" if milliseconds > 0 else "ahead of"
    return (
        f"This server's clock is {seconds:,.1f} s {direction} {venue_name}'s; requests are signed "
        f"with {venue_name}'s time"
    )


@register.filter
def signed_usdt(value: Decimal) -> str:
    return ("+" if value >= 0 else "−") + floatformat(abs(value), "2g")


@register.filter
def signed_btc(value: Decimal) -> str:
    return ("+" if value >= 0 else "−") + floatformat(abs(value), "8g")


@register.filter
def signed_pct(value: Decimal) -> str:
    return ("+" if value >= 0 else "−") + floatformat(abs(value), 2) + "%"


@register.filter
def is_stale(connection: ExchangeConnection, stale_after) -> bool:
    """A working connection whose last good balance is older than twice the refresh interval."""
    return selectors.is_stale(connection, stale_after)


_HELP_ANCHORS = {
    Status.INVALID: "status-invalid",
    Status.IP_NOT_ALLOWED: "status-ip-not-allowed",
    Status.EXPIRED: "status-expired",
    Status.INCORRECT_PERMISSIONS: "status-incorrect-permissions",
    Status.WITHDRAW_ENABLED: "status-withdraw-enabled",
    Status.TEMPORARY: "status-temporary",
    Status.TRADING_EXPIRED: "status-trading-expired",
}


@register.filter
def help_anchor(status: str) -> str:
    """Where the help guide explains this status."""
    return _HELP_ANCHORS.get(status, "troubleshooting")


@register.filter
def amount(value: Decimal | None) -> str:
    """An asset amount: thousands separators, up to 8 decimals, no trailing zeros."""
    if value is None:
        return "—"
    text = floatformat(value, "8g")
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def price(value: Decimal | None) -> str:
    """A price: 2 decimals from 1 up, 4 significant digits below (formatting.price)."""
    return formatting.price(value)


@register.filter
def status_label(status: str) -> str:
    return Status(status).label if status in Status.values else status


def _seen(context) -> list:
    """What exchanges saw, read once per request however many rows or forms ask."""
    return selectors.seen_addresses_once(context.get("request"))


@register.simple_tag(takes_context=True)
def server_addresses(context, venue) -> ServerAddresses:
    """This server's outgoing addresses for a venue's dialog or guide (exchanges.egress)."""
    return selectors.server_addresses(venue.id, _seen(context))


@register.simple_tag(takes_context=True)
def ip_binding(context, connection: ExchangeConnection) -> BindingCheck | None:
    """Whether the key's IP list includes this server's addresses: EGRESS_IPS, or else the ones
    this venue saw (another venue's sighting is not this venue's fact)."""
    bound = split_commas(connection.ip_addresses)
    if not bound:
        return None
    venue = connection.venue
    server = selectors.server_addresses(venue.id, [] if settings.EGRESS_IPS else _seen(context))
    own = ServerAddresses(
        server.venue_id, server.configured, tuple(s for s in server.seen if s.venue_id == venue.id)
    )
    working = connection.status in (Status.CONNECTED, Status.TRADING_EXPIRED)
    return binding_check(bound, own, venue_name=venue.name, working=working)


@register.filter
def copy_text(server: ServerAddresses, separator: str = " ") -> str:
    return server.copy_text(separator)


@register.filter
def why_bind(venue) -> str:
    """The venue's own rule for keys without an IP binding, in one line."""
    rule = venue.unbound_key_rule
    return rule.line(venue.name) if rule else ""


@register.filter
def mismatch(sighting: Sighting, server: ServerAddresses) -> str:
    when = date_format(timezone.localtime(sighting.seen_at), "j M Y")
    return mismatch_note(sighting.seen_by, sighting.ip, server.configured, when)
