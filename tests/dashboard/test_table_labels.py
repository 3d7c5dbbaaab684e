"""Every table a person reads on the Compliance, Dose, Alerts, Data quality, Records, Dose
reports and Export pages, under AppTest on demo data, for each role that opens them (issue 12).

st.dataframe draws in a canvas, so what it shows is read here from what the page hands it: each
column's header and number format (the column_config in the element's proto), what a missing
value shows (the placeholder), and the cells themselves. A table passes when no header is a
code name (`snake_case`, or starting in lower case: "p5", "drl", "kind"), every number column
has a fixed-decimal format (never "%g", which writes 3.05e+04, nor scientific notation), missing
values show as nothing, and no cell reads "None", "nan" or "NaT", ends in "+00:00" or is a raw
code value ("not_confirmed"). The browser test (tests/e2e/test_readable.py) reads the visible
headers and text of every page for every role.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from audit.auth import Actor
from audit.demo import generate
from audit.storage.engine import make_engine
from audit.vocab import Role
from dashboard.labels import SETTING_NAMES
from tests.conftest import BACKENDS, Databases
from tests.dose_reports.dose_helpers import REAL_FILES

VIEWS = Path(__file__).resolve().parents[2] / "dashboard" / "views"
ROLES = {role: Actor(f"{role.value}-reader", role) for role in Role}
TECH = Actor("demo-tech1", Role.TECHNOLOGIST)  # the demo's own technologist: their records
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
BAD_CELLS = re.compile(r"^(None|nan|NaN|NaT|<NA>)$|\+00:00$|\de[+-]\d")
#: printf conversions that are not fixed-decimal: %g/%G switch to exponents, %e/%E always.
UNFIT_FORMATS = re.compile(r"%[-+ 0#,']*\d*(?:\.\d+)?[gGeE]")
#: A setting's code name ("srdl_air_kerma_mgy") anywhere in a cell or the page's text.
SETTING_NAME = re.compile(r"\b(" + "|".join(SETTING_NAMES) + r")\b")
BAD_TEXT = re.compile(r"\b(None|NaT|nan|NaN)\b|\de\+0")


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest, databases: Databases) -> Iterator[str]:
    url = databases.sqlite() if request.param == "sqlite" else databases.postgresql()
    engine = make_engine(url)
    generate(engine, procedures=1200, seed=5, until=date(2026, 6, 30))
    engine.dispose()
    yield url


@pytest.fixture(autouse=True)
def _fresh_resources() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def open_page(url: str, name: str, actor: Actor, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FLUORO_AUDIT_DB", url)
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=120)
    at.session_state["actor"] = actor
    at.context["timezone"] = "America/Chicago"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table_problems(element: object) -> list[str]:
    """What a person would see wrong in one st.dataframe / st.data_editor."""
    proto = element.proto  # type: ignore[attr-defined]
    frame: pd.DataFrame = element.value  # type: ignore[attr-defined]
    config = json.loads(proto.columns or "{}")
    found = []
    if not proto.HasField("placeholder") or proto.placeholder != "":  # unset: "None"
        shown = proto.placeholder if proto.HasField("placeholder") else "None"
        found.append(f"missing values show as {shown!r}, not nothing")
    for column in frame.columns:
        spec = config.get(str(column), {})
        header = spec.get("label") or str(column)
        if SNAKE.match(header) or "_" in header or header[:1].islower():
            found.append(f"column {column!r}: header {header!r} is a code name")
        kind = spec.get("type_config", {})
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            found.append(f"column {column!r}: a timestamp drawn as it is stored")
        elif pd.api.types.is_numeric_dtype(frame[column]) and \
                not pd.api.types.is_bool_dtype(frame[column]):
            fmt = kind.get("format")
            if not fmt or UNFIT_FORMATS.search(fmt) or fmt in {"scientific", "engineering"}:
                found.append(f"column {column!r} ({header}): number format {fmt!r}")
        else:
            for cell in frame[column].dropna().astype(str).unique()[:500]:
                if BAD_CELLS.search(cell) or SNAKE.match(cell) or SETTING_NAME.search(cell):
                    found.append(f"column {column!r} ({header}): cell {cell!r}")
                    break
    return found


def page_problems(at: AppTest) -> list[str]:
    tables = list(at.dataframe)  # st.data_editor elements are among them
    assert tables, "the page drew no table"
    found = [f"table {number} ({', '.join(map(str, t.value.columns[:3]))}...): {problem}"
             for number, t in enumerate(tables) for problem in table_problems(t)]
    texts = [*at.caption, *at.markdown, *at.info, *at.subheader, *at.metric]
    found += [f"text {str(t.value)[:80]!r}" for t in texts
              if BAD_TEXT.search(str(t.value)) or SETTING_NAME.search(str(t.value))]
    return found


def test_the_checks_find_what_they_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw table (code headers, %g, None, +00:00, enum codes) fails every check."""
    class Proto:
        def __init__(self, columns: dict, placeholder: str | None):
            self.columns, self.placeholder = json.dumps(columns), placeholder or ""
            self.given = placeholder is not None

        def HasField(self, name: str) -> bool:  # protobuf's spelling
            return self.given

    class Raw:
        def __init__(self, frame: pd.DataFrame, columns: dict, placeholder: str | None):
            self.value, self.proto = frame, Proto(columns, placeholder)

    frame = pd.DataFrame({"p75": [30500.0], "kind": ["not_confirmed"],
                          "when": ["2026-03-01 09:30:00+00:00"], "drl": [float("nan")],
                          "source": ["drl_min_rooms = 10 (ICRP 135)"]})
    raw = Raw(frame, {"p75": {"label": "p75", "type_config": {"format": "%.3g"}}}, None)
    problems = "\n".join(table_problems(raw))
    for expected in ("'p75'", "'%.3g'", "not_confirmed", "+00:00", "'drl'", "not nothing",
                     "drl_min_rooms"):
        assert expected in problems


@pytest.mark.slow
@pytest.mark.parametrize("role", [Role.QUALITY_OFFICER, Role.RSO, Role.ADMIN])
@pytest.mark.parametrize("name", ["compliance", "dose", "alerts", "data_quality",
                                  "complications"])
def test_dashboard_tables_read_as_words(demo: str, name: str, role: Role,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(demo, name, ROLES[role], monkeypatch)
    assert not page_problems(at), "\n".join(page_problems(at))


@pytest.mark.slow
@pytest.mark.parametrize("quantity", ["fluoro_time_s", "air_kerma_mgy"])
def test_dose_tables_for_every_quantity(demo: str, quantity: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(demo, "dose", ROLES[Role.RSO], monkeypatch)
    at.selectbox(key="d_quantity").set_value(quantity).run()
    assert not at.exception
    assert not page_problems(at), "\n".join(page_problems(at))
    headers = [json.loads(t.proto.columns) for t in at.dataframe]
    unit = {"fluoro_time_s": "(s)", "air_kerma_mgy": "(mGy)"}[quantity]
    assert {"75th percentile " + unit, "Median " + unit, "Typical value " + unit} <= {
        c.get("label") for table in headers for c in table.values()}


@pytest.mark.slow
@pytest.mark.parametrize("actor", [TECH, *(ROLES[r] for r in Role if r != Role.TECHNOLOGIST)],
                         ids=lambda a: a.role.value)
def test_records_table_reads_as_words(demo: str, actor: Actor,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(demo, "records", actor, monkeypatch)
    assert not page_problems(at), "\n".join(page_problems(at))
    shown = at.dataframe[0].value
    if len(shown):
        assert set(shown["status"]) <= {"Final", "Void"}
        assert not shown["performed_at"].str.contains(r"\+\d\d:\d\d$").any()


@pytest.mark.slow
def test_dose_report_outcomes_read_as_words(demo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(demo, "dose_reports", ROLES[Role.RSO], monkeypatch)
    uploads = [(p.name, p.read_bytes(), "application/dicom") for p in REAL_FILES]
    at.file_uploader[0].set_value([*uploads, ("notes.txt", b"not a report", "text/plain")])
    at.button[0].click().run()
    assert not at.exception
    assert not page_problems(at), "\n".join(page_problems(at))
    assert set(at.dataframe[0].value["status"]) <= {"Imported", "Duplicate", "Rejected"}


@pytest.mark.slow
def test_export_files_table_reads_as_words(demo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(demo, "export", ROLES[Role.RSO], monkeypatch)
    next(b for b in at.button if b.label == "Export").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not page_problems(at), "\n".join(page_problems(at))



@pytest.mark.slow
def test_coverage_tables_read_as_words(demo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Coverage and safeguards page on the demo, its rule packs switched on (issue 15)."""
    from audit.auth import cli_actor
    from audit.rules import PACKS, set_enabled

    engine = make_engine(demo)
    for pack in PACKS:
        set_enabled(engine, cli_actor(), pack.key, True)
    engine.dispose()
    at = open_page(demo, "coverage", ROLES[Role.QUALITY_OFFICER], monkeypatch)
    assert len(at.dataframe) == 4
    assert not page_problems(at), "\n".join(page_problems(at))
