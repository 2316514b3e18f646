"""Server-rendered, accessible SVG charts for the portfolio dashboard.

No JavaScript, no inline ``style`` attributes: colours come from CSS classes (``series-0`` to
``series-7``, ``track``, ``axis``, ``grid``, ``line``, ``area``, ``dot``, ``tick``, ``placeholder``)
with presentation-attribute fallbacks, so a strict Content-Security-Policy and both themes work.
Every caller-supplied text is escaped. Output is deterministic: same input, same string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

SERIES_COUNT = 8
# Fallback fills when the page CSS does not style .series-N; mid tones readable on light and dark.
_PALETTE = ("#f7931a", "#627eea", "#26a17b", "#e84142", "#8247e5", "#f3ba2f", "#00aae4", "#8a8f98")
_ID_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_SVG = {"xmlns": "http://www.w3.org/2000/svg", "role": "img"}
_RING = {"class_": "track", "fill": "currentColor", "fill_opacity": "0.15", "fill_rule": "evenodd"}
_GRID = {"class_": "grid", "stroke": "currentColor", "stroke_opacity": "0.15"}
_AXIS = {"class_": "axis", "stroke": "currentColor", "stroke_opacity": "0.4"}
_AREA = {"class_": "area", "fill": "currentColor", "fill_opacity": "0.1", "stroke": "none"}
_LINE = {
    "class_": "line",
    "fill": "none",
    "stroke": "currentColor",
    "stroke_width": 2,
    "stroke_linejoin": "round",
}


@dataclass(frozen=True)
class AllocationRow:
    label: str
    value: Decimal
    share: Decimal  # percent with one decimal place; the shares of one chart sum to exactly 100.0
    css_class: str


def _n(x: float) -> str:
    """A coordinate rounded to 2 decimals, without trailing zeros."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _el(tag: str, content: str = "", **attrs: object) -> SafeString:
    """One element; `class_` / `font_size` become `class` / `font-size`; values and plain text are escaped."""
    pairs = ((name.rstrip("_").replace("_", "-"), value) for name, value in attrs.items())
    return format_html("<{}{}>{}</{}>", tag, format_html_join("", ' {}="{}"', pairs), content, tag)


def _text(
    css_class: str, x: object, y: object, content: str, anchor: str = "middle", **attrs: object
) -> SafeString:
    attrs = {"font_size": 11, "fill": "currentColor", **attrs}
    return _el("text", content, class_=css_class, x=x, y=y, text_anchor=anchor, **attrs)


def _svg(
    kind: str, id_prefix: str, title: str, desc: str, body: list[SafeString], **attrs: object
) -> SafeString:
    if not _ID_PREFIX.match(id_prefix):
        raise ValueError(f"id_prefix must be a letter then letters, digits, '-' or '_': {id_prefix!r}")
    head = [_el("title", title, id=f"{id_prefix}-title"), _el("desc", desc, id=f"{id_prefix}-desc")]
    content = mark_safe("".join(head + body))  # every part was built by format_html
    labelledby = f"{id_prefix}-title {id_prefix}-desc"
    return _el("svg", content, class_=f"chart {kind}", aria_labelledby=labelledby, **_SVG, **attrs)


def allocation_rows(slices: Sequence[tuple[str, Decimal]], *, max_slices: int = 7) -> list[AllocationRow]:
    """Positive slices, largest first, those past `max_slices` grouped into one "Other" row."""
    if max_slices < 1:
        raise ValueError("max_slices must be at least 1")
    items = []
    for label, raw in slices:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
        if value.is_finite() and value > 0:
            items.append((str(label), value))
    items.sort(key=lambda item: (-item[1], item[0]))
    if len(items) > max_slices:
        items = [*items[:max_slices], ("Other", sum((v for _, v in items[max_slices:]), Decimal(0)))]
    if not items:
        return []
    total = sum(v for _, v in items)
    # Largest-remainder rounding in tenths of a percent, so the shares always add up to 100.0.
    exact = [v * 1000 / total for _, v in items]
    tenths = [int(e) for e in exact]
    for i in sorted(range(len(items)), key=lambda i: (tenths[i] - exact[i], i))[: 1000 - sum(tenths)]:
        tenths[i] += 1
    return [
        AllocationRow(label, value, Decimal(t).scaleb(-1), f"series-{i % SERIES_COUNT}")
        for i, ((label, value), t) in enumerate(zip(items, tenths, strict=True))
    ]


def _ring(c: float, outer: float, inner: float) -> str:
    """A full ring, two half-circle arcs per edge (a single 360 degree arc degenerates); fill-rule evenodd."""
    return "".join(
        f"M{_n(c - r)} {_n(c)}A{_n(r)} {_n(r)} 0 1 {sweep} {_n(c + r)} {_n(c)}"
        f"A{_n(r)} {_n(r)} 0 1 {sweep} {_n(c - r)} {_n(c)}Z"
        for r, sweep in ((outer, 1), (inner, 0))
    )


def _sector(c: float, outer: float, inner: float, start: float, end: float) -> str:
    """An annular sector between two fractions of the circle, clockwise from 12 o'clock."""
    a0, a1 = (2 * math.pi * f - math.pi / 2 for f in (start, end))
    large = 1 if end - start > 0.5 else 0

    def pt(r: float, a: float) -> str:
        return f"{_n(c + r * math.cos(a))} {_n(c + r * math.sin(a))}"

    o, i = _n(outer), _n(inner)
    outer_arc = f"M{pt(outer, a0)}A{o} {o} 0 {large} 1 {pt(outer, a1)}"
    return f"{outer_arc}L{pt(inner, a1)}A{i} {i} 0 {large} 0 {pt(inner, a0)}Z"


def allocation_donut(
    slices: Sequence[tuple[str, Decimal]],
    *,
    size: int = 180,
    max_slices: int = 7,
    title: str = "Allocation by asset",
    id_prefix: str = "chart",
) -> SafeString:
    rows = allocation_rows(slices, max_slices=max_slices)
    c = size / 2
    outer, inner = c - 1, c * 0.6
    box = {"width": size, "height": size, "viewBox": f"0 0 {size} {size}"}
    if not rows:
        body = [
            _el("path", d=_ring(c, outer, inner), **_RING),
            _text("placeholder", _n(c), _n(c), "No balances yet", dominant_baseline="middle", font_size=12),
        ]
        return _svg("chart-donut", id_prefix, title, "No balances yet", body, **box)
    total = sum(r.value for r in rows)
    body, done = [], Decimal(0)
    for i, row in enumerate(rows):
        start, done = float(done / total), done + row.value
        d = _ring(c, outer, inner) if len(rows) == 1 else _sector(c, outer, inner, start, float(done / total))
        tip = _el("title", f"{row.label} {row.share}%")
        fill = _PALETTE[i % SERIES_COUNT]
        body.append(_el("path", tip, class_=f"slice {row.css_class}", fill=fill, fill_rule="evenodd", d=d))
    desc = ", ".join(f"{r.label} {r.share}%" for r in rows)
    return _svg("chart-donut", id_prefix, title, desc, body, **box)


def _nice_ticks(lo: Decimal, hi: Decimal, count: int = 4) -> list[Decimal]:
    """Round-number gridline values (steps of 1, 2 or 5 x 10^n) covering lo..hi."""
    if hi == lo:
        pad = abs(hi) / 10 or Decimal(1)
        lo, hi = (lo - pad if lo else lo), hi + pad
    raw = (hi - lo) / count
    base = Decimal(1).scaleb(raw.adjusted())
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    first = (lo / step).to_integral_value(rounding=ROUND_FLOOR)
    last = (hi / step).to_integral_value(rounding=ROUND_CEILING)
    return [(first + k) * step for k in range(int(last - first) + 1)]


def _fmt(value: Decimal, decimals: int) -> str:
    """Thousands separators and fixed decimals, never "-0"."""
    text = f"{value:,.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text


def _fmt_value(value: Decimal, unit: str = "") -> str:
    """Two decimals, or two significant digits below 1: "12,345.67", "0.52", "0.0012"; in
    BTC eight decimals (a satoshi). A unit, when given, is named after the number."""
    size = abs(value)
    if unit == "BTC":
        text = _fmt(value, 8)
    else:
        text = _fmt(value, 2 if size >= 1 or not size else min(8, 1 - size.adjusted()))
    return f"{text} {unit}" if unit else text


def _day(dt: datetime) -> str:
    return f"{dt.day} {dt:%b}"


def history_line(
    points: Sequence[tuple[datetime, Decimal]],
    *,
    width: int = 640,
    height: int = 180,
    title: str = "Total value over time",
    id_prefix: str = "history",
    unit: str = "",
) -> SafeString:
    """Value over time; datetimes are labelled as given, so localise them first. `unit` ("USDT",
    "BTC") is named in the description and sets the precision of its values."""
    box = {"width": "100%", "viewBox": f"0 0 {width} {height}", "preserveAspectRatio": "xMidYMid meet"}
    pts = [(t, v if isinstance(v, Decimal) else Decimal(str(v))) for t, v in points]
    pts = sorted(((t, v) for t, v in pts if v.is_finite()), key=lambda p: p[0])
    if not pts:
        message = "No history yet"
        body = [_text("placeholder", _n(width / 2), _n(height / 2), message, dominant_baseline="middle")]
        return _svg("chart-history", id_prefix, title, "No history yet", body, **box)
    (t0, v0), (t1, v1) = pts[0], pts[-1]
    same_day = t0.date() == t1.date()
    ticks = _nice_ticks(min(v for _, v in pts), max(v for _, v in pts))
    decimals = max(0, -(ticks[1] - ticks[0]).normalize().as_tuple().exponent)
    labels = [_fmt(t, decimals) for t in ticks]
    left, right, top, bottom = 8 + 7 * max(len(s) for s in labels), width - 12, 10, height - 24
    lo, hi, seconds = ticks[0], ticks[-1], (t1 - t0).total_seconds()

    def x(t: datetime) -> str:
        return (
            _n(left + (t - t0).total_seconds() / seconds * (right - left))
            if seconds
            else _n((left + right) / 2)
        )

    def y(v: Decimal) -> str:
        return _n(bottom - float((v - lo) / (hi - lo)) * (bottom - top))

    body = []
    for tick, label in zip(ticks, labels, strict=True):
        body.append(_el("line", x1=left, x2=right, y1=y(tick), y2=y(tick), **_GRID))
        body.append(_text("tick", left - 6, y(tick), label, "end", dominant_baseline="middle"))
    body.append(_el("line", x1=left, x2=right, y1=bottom, y2=bottom, **_AXIS))
    stamp = (lambda t: f"{t:%H:%M}") if same_day else _day
    ends = [(t0, "start"), (t1, "end")] if seconds else [(t0, "middle")]
    body += [_text("tick", x(t), height - 6, stamp(t), anchor) for t, anchor in ends]
    coords = [f"{x(t)},{y(v)}" for t, v in pts]

    def when(t: datetime) -> str:
        # As the pages write a moment ("1 Dec 2026, 23:41 UTC"), the zone said when it is known.
        if not same_day:
            return f"{_day(t)} {t.year}"
        return f"{_day(t)} {t.year}, {t:%H:%M}" + (f" {t.tzname()}" if t.tzname() else "")

    if len(pts) == 1:
        body.append(_el("circle", class_="dot", cx=x(t0), cy=y(v0), r=4, fill="currentColor"))
        body.append(_text("tick", x(t0), _n(float(y(v0)) - 10), _fmt_value(v0, unit)))
        return _svg("chart-history", id_prefix, title, f"On {when(t0)}: {_fmt_value(v0, unit)}", body, **box)
    area = f"M{x(t0)},{bottom}L{'L'.join(coords)}L{x(t1)},{bottom}Z"
    body += [_el("path", d=area, **_AREA), _el("polyline", points=" ".join(coords), **_LINE)]
    change = ((v1 - v0) / abs(v0) * 100).quantize(Decimal("0.1")) if v0 else None
    change_text = "n/a" if change is None else f"{change if change else abs(change):+}%"
    desc = (
        f"From {when(t0)} to {when(t1)}: {_fmt_value(v0, unit)} → {_fmt_value(v1, unit)} "
        f"(change {change_text})"
    )
    return _svg("chart-history", id_prefix, title, desc, body, **box)
