"""The audit pages' charts, read from their Vega-Lite specs (`chart.to_dict()`), no browser and
no database (issue 12): every category labelled in full, reference lines drawn with a label in
their own colour (never the bars'), legends in words, colours from the colour-blind-safe
palette, and a "how to read this" sentence for each chart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dashboard import charts, dose_charts

#: Long names, more than the axis would show by default (9 bars once showed 5 names).
PHYSICIANS = [f"Dr. Demo {name}" for name in (
    "Weiss", "Holloway-Fitzgerald", "Mehta", "Álvarez", "Mensah", "O'Connor", "Chen", "Li",
    "Papadopoulou-Konstantinidou", "Nguyen", "Okafor", "Schmidt")]
PROCEDURES = ["ILESI", "TFESI", "CAUDAL", "MBB", "RFA", "FACET", "SIJ", "DISCOGRAPHY",
              "SYMPATHETIC", "OTHER"]
PALETTE = {charts.BLACK, charts.ORANGE, charts.SKY, charts.GREEN, charts.YELLOW, charts.BLUE,
           charts.VERMILLION, charts.PURPLE, charts.GREY}
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


# --- sample data shaped as the analytics return it ---------------------------------------------

def rates(by: str, names: list[str]) -> pd.DataFrame:
    rate = np.linspace(0.5, 0.95, len(names))
    return pd.DataFrame({by: names, "eligible": 100, "compliant": (rate * 100).astype(int),
                         "excepted": 2, "non_compliant": 10, "rate": rate,
                         "ci_low": rate - 0.08, "ci_high": np.minimum(1, rate + 0.06)})


def p_chart_data() -> pd.DataFrame:
    months = [f"2025-{m:02d}" for m in range(1, 13)]
    rate = [0.8, 0.82, 0.55, 0.81, 0.79, 0.84, 0.8, 0.83, 0.8, 0.78, 0.99, 0.81]
    return pd.DataFrame({"month": months, "n": 90, "compliant": [int(r * 90) for r in rate],
                         "rate": rate, "centre": 0.8, "lcl": 0.68, "ucl": 0.92,
                         "signal": [r < 0.68 or r > 0.92 for r in rate]})


def dose_lines(with_drl: bool) -> pd.DataFrame:
    base = np.linspace(0.4, 9, len(PROCEDURES))
    frame = pd.DataFrame({"procedure": PROCEDURES, "n": 200, "p5": base * 0.3,
                          "p25": base * 0.6, "p50": base, "p75": base * 1.6,
                          "p95": base * 3, "figure": "typical value", "rooms": 3})
    frame["drl"] = base * 1.5 if with_drl else np.nan
    frame["achievable"] = base if with_drl else np.nan
    frame["typical"] = np.nan if with_drl else base
    frame["published_median"] = [0.68 if p == "TFESI" else np.nan for p in PROCEDURES]
    return frame


def bins() -> pd.DataFrame:
    edges = np.geomspace(0.05, 20, 41)
    counts = np.round(60 * np.exp(-((np.log(edges[:-1]) - np.log(0.7)) ** 2))).astype(int)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})


def scorecard_data() -> pd.DataFrame:
    ratio = np.linspace(2.9, 0.8, len(PHYSICIANS))
    return pd.DataFrame({"physician": PHYSICIANS, "records": 100, "kap_per_level_ratio": ratio,
                         "time_per_level_ratio": ratio, "share_above": 0.4,
                         "pulsed_rate": 0.5, "low_dose_rate": 0.3, "compliance_rate": 0.8})


def monthly_data() -> pd.DataFrame:
    months = [f"2025-{m:02d}" for m in range(1, 13)]
    return pd.DataFrame([{"month": m, "procedure": p, "n": 10, "median": 1.0 + i}
                         for i, p in enumerate(PROCEDURES) for m in months])


def completeness(by: str, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({by: names, "records": 100, "missing_dap_share": 0.01,
                         "missing_air_kerma_share": 0.2, "with_warnings_share": 0.13,
                         "from_dose_report_share": 0.5})


def alert_summary() -> pd.DataFrame:
    rows = [(k, q) for k in ("cumulative", "investigation", "srdl")
            for q in ("air_kerma_mgy", "dap_gycm2", "fluoro_time_s")]
    return pd.DataFrame([{"kind": k, "quantity": q, "open": 3, "acknowledged": 1,
                          "withdrawn": 1, "total": 5} for k, q in rows])


def physician_alerts() -> pd.DataFrame:
    return pd.DataFrame([{"physician": p, "procedures": 100, "kind": k, "alerts": 2,
                          "per_100": 2.0} for p in PHYSICIANS
                         for k in ("srdl", "cumulative", "investigation")])


KINDS = ("srdl", "cumulative", "investigation")
CATEGORY_CHARTS: dict[str, Callable[[], tuple[alt.TopLevelMixin, int]]] = {
    "compliance by physician": lambda: (charts.rate_bars(rates("physician", PHYSICIANS),
                                                         "physician", 0.8), len(PHYSICIANS)),
    "compliance by procedure": lambda: (charts.rate_bars(rates("procedure", PROCEDURES),
                                                         "procedure", 0.8), len(PROCEDURES)),
    "dose distribution": lambda: (dose_charts.distribution(dose_lines(True), "dap_gycm2"),
                                  len(PROCEDURES)),
    "physician scorecard": lambda: (dose_charts.scorecard(scorecard_data(), 1.5),
                                    len(PHYSICIANS)),
    "data quality by room": lambda: (charts.share_bars(
        completeness("room", [f"Demo Procedure Room {i}" for i in range(9)]), "room"), 9),
    "safety flags": lambda: (charts.flag_bars(pd.DataFrame({
        "flag": ["a", "b", "c"], "records": [3, 0, 400], "meaning": [
            "Particulate steroid in cervical TFESI",
            "Vascular uptake without needle repositioning",
            "More levels than the catalog allows"]})), 3),
    "alerts by kind": lambda: (charts.alerts_by_kind(alert_summary(), KINDS), 3),
    "alerts by physician": lambda: (charts.alerts_by_physician(
        physician_alerts(), PHYSICIANS, KINDS), len(PHYSICIANS)),
    "monthly medians": lambda: (dose_charts.monthly(monthly_data(), "dap_gycm2"),
                                len(PROCEDURES)),
}
ALL_CHARTS: dict[str, Callable[[], alt.TopLevelMixin]] = {
    **{name: (lambda build=build: build()[0]) for name, build in CATEGORY_CHARTS.items()},
    "p-chart": lambda: charts.p_chart(p_chart_data()),
    "histogram": lambda: dose_charts.histogram(
        bins(), dose_charts.reference_lines(dose_lines(True).iloc[1]), "TFESI", "dap_gycm2"),
    "histogram, typical value": lambda: dose_charts.histogram(
        bins(), dose_charts.reference_lines(dose_lines(False).iloc[1]), "TFESI", "dap_gycm2"),
    "dose distribution, typical values": lambda: dose_charts.distribution(dose_lines(False),
                                                                           "fluoro_time_s"),
}


# --- reading a spec -----------------------------------------------------------------------------

def units(spec: dict[str, Any], data: Any = None) -> Iterator[dict[str, Any]]:
    """Every single-view spec of a (layered, faceted) chart, with the data it draws."""
    data = spec.get("data", data)
    if "layer" in spec:
        for layer in spec["layer"]:
            yield from units(layer, data)
    elif "spec" in spec:
        yield from units(spec["spec"], data)
    else:
        yield {**spec, "data": data}


def rows(top: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    return top["datasets"][unit["data"]["name"]]


def mark(unit: dict[str, Any]) -> dict[str, Any]:
    value = unit["mark"]
    return value if isinstance(value, dict) else {"type": value}


def colours(unit: dict[str, Any]) -> set[str]:
    """The colours a unit draws in: its mark's colour, else its colour scale's range."""
    found = {mark(unit)[k] for k in ("color", "fill", "stroke") if isinstance(
        mark(unit).get(k), str)}
    encoding = unit.get("encoding", {}).get("color", {})
    found |= set(encoding.get("scale", {}).get("range", []))
    for branch in (encoding.get("condition", {}), encoding):
        if isinstance(branch.get("value"), str):
            found.add(branch["value"])
    return found


def spec_of(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return chart.to_dict()


# --- every category labelled --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CATEGORY_CHARTS))
def test_every_category_has_its_label(name: str) -> None:
    chart, categories = CATEGORY_CHARTS[name]()
    top = spec_of(chart)
    axes = []
    for unit in units(top):
        for channel in ("x", "y"):
            encoding = unit.get("encoding", {}).get(channel, {})
            if encoding.get("type") in {"nominal", "ordinal"}:
                axes.append((channel, encoding.get("axis") or {}))
    if "facet" in top:  # small multiples: one header per category, in full
        header = top["facet"].get("header", {})
        assert header.get("labelLimit") == 0, f"{name}: panel titles may be cut"
        assert top.get("columns"), f"{name}: panels should wrap into rows"
        return
    assert axes, f"{name}: no category axis found"
    for channel, axis in axes:
        assert axis.get("labelLimit") == 0, f"{name}: {channel} labels cut at a length"
        assert axis.get("labelOverlap") is False, f"{name}: {channel} labels hidden on overlap"
    # and room for them: one row per category, each at least 20 px
    assert top["height"] >= 20 * categories + 60, f"{name}: {top['height']} px for {categories}"


def test_category_axis_and_heights_grow_with_the_rows() -> None:
    axis = charts.category_axis().to_dict()
    assert axis == {"labelLimit": 0, "labelOverlap": False}
    assert charts.rows_height(20) - charts.rows_height(10) == 10 * charts.ROW
    assert charts.rows_height(5, legend=True) > charts.rows_height(5)


# --- reference lines: their own colour, labelled -------------------------------------------------

def reference_lines(top: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(rule, text) pairs drawn from the same data: a reference line and its label."""
    all_units = list(units(top))
    pairs = []
    for rule in (u for u in all_units if mark(u)["type"] == "rule"):
        texts = [u for u in all_units if mark(u)["type"] == "text"
                 and u["data"] == rule["data"]]
        if texts:
            pairs.append((rule, texts[0]))
    return pairs


def bar_colours(top: dict[str, Any]) -> set[str]:
    return set().union(*(colours(u) for u in units(top) if mark(u)["type"] == "bar"))


def label_texts(top: dict[str, Any], text: dict[str, Any]) -> list[str]:
    field = text["encoding"]["text"]["field"]
    return [str(row[field]) for row in rows(top, text)]


@pytest.mark.parametrize(("name", "expected"), [
    ("compliance by physician", ["Overall 80.0%"]),
    ("physician scorecard", ["Peers' typical (1.0)"]),
    ("histogram", ["Local DRL", "Achievable dose", "Published median"]),
    ("histogram, typical value", ["Typical value", "Published median"]),
])
def test_each_reference_line_is_labelled_in_a_colour_other_than_the_bars(
        name: str, expected: list[str]) -> None:
    top = spec_of(ALL_CHARTS[name]())
    pairs = reference_lines(top)
    assert pairs, f"{name}: no labelled reference line"
    shown = [label for _, text in pairs for label in label_texts(top, text)]
    for label in expected:
        assert any(s.startswith(label) for s in shown), f"{name}: {label!r} not on the chart"
    bars = bar_colours(top)
    for rule, text in pairs:
        line = colours(rule)
        assert line, f"{name}: a reference line without a colour"
        assert not line & bars, f"{name}: reference line in the bars' colour {line & bars}"
        assert colours(text) == line, f"{name}: the label is not in its line's colour"
        assert line <= PALETTE


def test_the_histogram_lines_differ_from_each_other_in_colour_and_dash() -> None:
    top = spec_of(ALL_CHARTS["histogram"]())
    [(rule, _)] = reference_lines(top)
    scale = rule["encoding"]["color"]["scale"]
    assert scale["domain"] == ["Local DRL", "Achievable dose", "Published median"]
    assert len(set(scale["range"])) == 3 and charts.BOX not in scale["range"]
    dashes = rule["encoding"]["strokeDash"]["scale"]["range"]
    assert len({tuple(d) for d in dashes}) == 3


@pytest.mark.parametrize("name", ["dose distribution", "dose distribution, typical values"])
def test_dose_distribution_references_are_named_in_the_legend(name: str) -> None:
    top = spec_of(ALL_CHARTS[name]())
    refs = [u for u in units(top) if u.get("encoding", {}).get("color", {}).get("field")
            == "reference"]
    assert refs, "no reference layer"
    scale = refs[0]["encoding"]["color"]["scale"]
    wanted = ["Local DRL", "Achievable dose", "Published median"] if "typical" not in name \
        else ["Typical value", "Published median"]
    assert scale["domain"] == wanted
    assert not set(scale["range"]) & (bar_colours(top) | {charts.BOX, charts.BAR, charts.GREY})


# --- legends in words ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL_CHARTS))
def test_legends_are_in_words(name: str) -> None:
    top = spec_of(ALL_CHARTS[name]())
    for unit in units(top):
        for channel in ("color", "shape", "strokeDash"):
            encoding = unit.get("encoding", {}).get(channel)
            if not encoding or "field" not in encoding or encoding.get("legend", {}) is None:
                continue
            title = encoding.get("legend", {}).get("title", encoding.get("title", ""))
            assert title is None or (not SNAKE.match(str(title))
                                     and title != encoding["field"]), f"{name}: legend {title!r}"
            values = encoding.get("scale", {}).get("domain") or sorted(
                {str(row[encoding["field"]]) for row in rows(top, unit)})
            for value in values:
                assert str(value).lower() not in {"true", "false"}, f"{name}: legend {value!r}"
                assert not SNAKE.match(str(value)), f"{name}: legend entry {value!r}"


def test_the_p_chart_legend_says_within_or_outside_the_control_limits() -> None:
    top = spec_of(ALL_CHARTS["p-chart"]())
    points = next(u for u in units(top) if mark(u)["type"] == "point")
    assert points["encoding"]["color"]["scale"]["domain"] == [
        "Within control limits", "Outside control limits"]


def test_the_p_chart_names_its_centre_line_and_control_limits_in_their_colour() -> None:
    """The limits change month by month (step lines, not rules); each is named at the last
    month by a text mark in the limits' colour, which is not the rate's."""
    top = spec_of(ALL_CHARTS["p-chart"]())
    lines = [u for u in units(top) if mark(u)["type"] == "line"]
    limits = [u for u in lines if u["encoding"]["y"]["field"] in {"ucl", "lcl"}]
    rate = next(u for u in lines if u["encoding"]["y"]["field"] == "rate")
    [text] = [u for u in units(top) if mark(u)["type"] == "text"]
    assert set(label_texts(top, text)) == {"Upper control limit", "Centre line",
                                           "Lower control limit"}
    assert colours(text) == set().union(*(colours(u) for u in limits))
    assert not colours(text) & colours(rate)


# --- palette and captions -----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL_CHARTS))
def test_colours_come_from_the_colour_blind_safe_palette(name: str) -> None:
    top = spec_of(ALL_CHARTS[name]())
    used = set().union(*(colours(u) for u in units(top)))
    assert used <= PALETTE, f"{name}: {used - PALETTE}"


def test_monthly_medians_are_small_multiples_not_ten_lines_in_one_chart() -> None:
    top = spec_of(ALL_CHARTS["monthly medians"]())
    assert top["facet"]["field"] == "procedure"
    [line] = list(units(top))
    assert "color" not in line["encoding"]  # one line per panel, no colour to tell apart


def test_every_chart_has_a_how_to_read_sentence() -> None:
    sentences = [charts.P_CHART_CAPTION, charts.rate_caption("physician"),
                 charts.share_caption("room"), charts.FLAGS_CAPTION, charts.ALERTS_CAPTION,
                 charts.PHYSICIAN_ALERTS_CAPTION, dose_charts.distribution_caption("dap_gycm2"),
                 dose_charts.histogram_caption("TFESI", "air_kerma_mgy"),
                 dose_charts.SCORECARD_CAPTION, dose_charts.monthly_caption("fluoro_time_s")]
    for sentence in sentences:
        assert sentence.startswith("How to read this: ") and sentence.endswith(".")
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", sentence), sentence
