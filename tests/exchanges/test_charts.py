from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils.safestring import SafeString

from exchanges.charts import AllocationRow, allocation_donut, allocation_rows, history_line

NS = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script>"
START = datetime(2025, 11, 24, 9, 0)


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def _tags(root: ET.Element, name: str) -> list[ET.Element]:
    return list(root.iter(f"{NS}{name}"))


def _ids(root: ET.Element) -> set[str]:
    return {el.get("id") for el in root.iter() if el.get("id")}


def _assert_accessible(svg: str) -> ET.Element:
    root = _parse(svg)
    assert root.get("role") == "img"
    labelledby = root.get("aria-labelledby", "").split()
    assert len(labelledby) == 2
    title_id, desc_id = labelledby
    assert root.find(f"{NS}title").get("id") == title_id
    assert root.find(f"{NS}desc").get("id") == desc_id
    assert "style=" not in svg
    assert not _tags(root, "script")
    return root


def _coins(count: int) -> list[tuple[str, Decimal]]:
    return [(f"C{i:02d}", Decimal(100 - i)) for i in range(count)]


def test_the_donut_is_well_formed_accessible_svg_with_one_path_per_slice():
    svg = allocation_donut([("BTC", Decimal("6240")), ("ETH", Decimal("3000")), ("SOL", Decimal("760"))])
    assert isinstance(svg, SafeString)
    root = _assert_accessible(svg)
    slices = [p for p in _tags(root, "path") if "slice" in p.get("class", "")]
    assert [p.get("class") for p in slices] == ["slice series-0", "slice series-1", "slice series-2"]
    assert all(p.get("fill") for p in slices)
    assert root.find(f"{NS}desc").text == "BTC 62.4%, ETH 30.0%, SOL 7.6%"


def test_rows_are_sorted_largest_first_and_ignore_zero_and_negative_values():
    slices = [("DOGE", Decimal("1")), ("BTC", Decimal("3")), ("X", Decimal(0)), ("Y", Decimal(-5))]
    rows = allocation_rows(slices)
    assert rows == [
        AllocationRow("BTC", Decimal("3"), Decimal("75.0"), "series-0"),
        AllocationRow("DOGE", Decimal("1"), Decimal("25.0"), "series-1"),
    ]


def test_slices_past_max_slices_are_grouped_into_other():
    rows = allocation_rows(_coins(10), max_slices=7)
    assert [r.label for r in rows] == ["C00", "C01", "C02", "C03", "C04", "C05", "C06", "Other"]
    assert rows[-1].value == Decimal(93 + 92 + 91)
    assert rows[-1].css_class == "series-7"


def test_the_donut_uses_the_same_grouping_as_the_rows():
    rows = allocation_rows(_coins(12), max_slices=4)
    root = _parse(allocation_donut(_coins(12), max_slices=4))
    titles = [p.find(f"{NS}title").text for p in _tags(root, "path")]
    assert titles == [f"{r.label} {r.share}%" for r in rows]
    assert titles[-1].startswith("Other ")


@pytest.mark.parametrize("count", [1, 3, 7, 9, 25])
def test_shares_always_sum_to_exactly_one_hundred(count):
    rows = allocation_rows([(f"A{i}", Decimal(1) / Decimal(i + 3)) for i in range(count)])
    assert sum(r.share for r in rows) == Decimal("100.0")
    assert all(r.share.as_tuple().exponent == -1 for r in rows)


def test_a_single_slice_is_drawn_as_a_full_ring_of_two_arcs_per_edge():
    root = _parse(allocation_donut([("BTC", Decimal("1.5")), ("ETH", Decimal(0))]))
    (path,) = _tags(root, "path")
    assert path.get("d").count("A") == 4
    assert path.get("fill-rule") == "evenodd"
    assert root.find(f"{NS}desc").text == "BTC 100.0%"


@pytest.mark.parametrize("slices", [[], [("BTC", Decimal(0))], [("BTC", Decimal("-1"))]])
def test_an_empty_donut_shows_a_neutral_ring_and_says_no_balances_yet(slices):
    root = _assert_accessible(allocation_donut(slices))
    (ring,) = _tags(root, "path")
    assert ring.get("class") == "track"
    assert [t.text for t in _tags(root, "text")] == ["No balances yet"]


def test_labels_and_titles_from_the_exchange_are_escaped():
    svg = allocation_donut([(EVIL, Decimal(1)), ("BTC", Decimal(3))], title=f'"{EVIL}')
    root = _assert_accessible(svg)
    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert root.find(f"{NS}title").text == f'"{EVIL}'
    assert EVIL in root.find(f"{NS}desc").text


def test_different_id_prefixes_give_different_ids():
    first = _parse(allocation_donut(_coins(3), id_prefix="alloc-a"))
    second = _parse(allocation_donut(_coins(3), id_prefix="alloc-b"))
    history = _parse(history_line([(START, Decimal(1))], id_prefix="hist"))
    assert _ids(first) == {"alloc-a-title", "alloc-a-desc"}
    assert not _ids(first) & _ids(second)
    assert not _ids(first) & _ids(history)


@pytest.mark.parametrize("prefix", ["", "1abc", 'x" onload="alert(1)', "a b"])
def test_an_unsafe_id_prefix_is_refused(prefix):
    with pytest.raises(ValueError, match="id_prefix"):
        allocation_donut(_coins(2), id_prefix=prefix)


def _history() -> list[tuple[datetime, Decimal]]:
    return [
        (START + timedelta(days=6), Decimal("13000.00")),
        (START, Decimal("12345.67")),
        (START + timedelta(days=2), Decimal("11999.50")),
    ]


def test_the_history_line_is_well_formed_responsive_svg_without_inline_styles():
    svg = history_line(_history())
    root = _assert_accessible(svg)
    assert root.get("width") == "100%"
    assert root.get("viewBox") == "0 0 640 180"
    assert root.get("preserveAspectRatio")
    assert len(_tags(root, "polyline")) == 1
    assert [p.get("class") for p in _tags(root, "path")] == ["area"]


def test_the_history_line_sorts_points_by_time():
    root = _parse(history_line(_history()))
    points = [tuple(map(float, p.split(","))) for p in _tags(root, "polyline")[0].get("points").split()]
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
    # 11,999.50 is the lowest value, so the middle point sits lowest (largest y).
    assert max(points, key=lambda p: p[1]) == points[1]


def test_the_history_desc_summarises_the_first_and_last_values_and_the_change():
    root = _parse(history_line(_history()))
    expected = "From 24 Nov 2025 to 30 Nov 2025: 12,345.67 → 13,000.00 (change +5.3%)"
    assert root.find(f"{NS}desc").text == expected


def test_a_fall_in_value_shows_a_negative_change():
    root = _parse(history_line([(START, Decimal("0.80")), (START + timedelta(days=1), Decimal("0.52"))]))
    assert root.find(f"{NS}desc").text.endswith("0.80 → 0.52 (change -35.0%)")


def test_gridlines_are_labelled_with_thousands_separators_and_dates_on_the_x_axis():
    root = _parse(history_line(_history()))
    labels = [t.text for t in _tags(root, "text")]
    assert "12,000" in labels
    assert labels[-2:] == ["24 Nov", "30 Nov"]
    assert len([line for line in _tags(root, "line") if line.get("class") == "grid"]) >= 3


def test_small_values_get_decimals_and_a_single_day_gets_times():
    points = [(START, Decimal("0.52")), (START + timedelta(hours=3), Decimal("0.61"))]
    labels = [t.text for t in _tags(_parse(history_line(points)), "text")]
    assert "0.55" in labels
    assert labels[-2:] == ["09:00", "12:00"]


def test_a_single_point_is_drawn_as_a_dot_with_its_label():
    root = _assert_accessible(history_line([(START, Decimal("1234.5"))]))
    assert len(_tags(root, "circle")) == 1
    assert not _tags(root, "polyline")
    assert "1,234.50" in [t.text for t in _tags(root, "text")]
    assert root.find(f"{NS}desc").text == "On 24 Nov 2025, 09:00: 1,234.50"


def test_no_history_shows_a_placeholder():
    root = _assert_accessible(history_line([]))
    assert [t.text for t in _tags(root, "text")] == ["No history yet"]
    assert root.find(f"{NS}desc").text == "No history yet"


def test_the_history_title_is_escaped():
    svg = history_line(_history(), title=EVIL)
    assert "<script" not in svg
    assert _parse(svg).find(f"{NS}title").text == EVIL


def test_coordinates_are_rounded_to_two_decimals():
    root = _parse(history_line(_history()))
    for number in _tags(root, "polyline")[0].get("points").replace(",", " ").split():
        assert len(number.partition(".")[2]) <= 2


def test_the_same_input_always_gives_the_same_string():
    assert allocation_donut(_coins(9)) == allocation_donut(list(reversed(_coins(9))))
    assert history_line(_history()) == history_line(list(reversed(_history())))
