"""Domain figures sourced and corrected (docs/reference.md §4, §5, §7, §8, §12): every seeded
catalog figure and effective-dose coefficient names what it rests on, the figures the first
release got wrong hold their corrected values (in a fresh database and, by migration 0010, in
an existing one, leaving an administrator's own changes alone), the ICRP 135 thresholds are
seeded with their source, and the days of background never appear without NCRP 184's caution.
On SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine, select, text

from audit.analytics.reference_levels import reference_table
from audit.analytics.snapshot import load_snapshot
from audit.catalog import FIGURE_FIELDS, figure_sources, load_catalog, seeded_figures
from audit.dosimetry import BACKGROUND_CAUTION, coefficient_basis, seeded_coefficients
from audit.log.service import ProcedureLog
from audit.settings import list_settings, load_settings
from audit.storage.engine import make_engine, migrate, read_session
from audit.storage.models import ProcedureType
from audit.vocab import FigureBasis
from tests.conftest import Databases, valid_record


def test_every_seeded_catalog_figure_has_a_source_and_the_database_holds_it(
        engine: Engine) -> None:
    figures = seeded_figures()
    with read_session(engine) as session:
        catalog = load_catalog(session)
    checked = 0
    for entry in catalog.entries.values():
        for field in FIGURE_FIELDS:
            value = getattr(entry, field)
            if value is None:
                assert (entry.code, field) not in figures
                continue
            figure = figures[(entry.code, field)]
            assert figure.value == pytest.approx(value), (entry.code, field)
            assert figure.source.strip() and figure.figure.strip()
            assert isinstance(figure.basis, FigureBasis)
            if figure.basis in (FigureBasis.PUBLISHED, FigureBasis.PUBLISHED_UNVERIFIED):
                assert figure.source != "none found" and any(c.isdigit() for c in figure.figure)
            checked += 1
    assert checked == len(figures) == 38
    shown = figure_sources(catalog)
    assert len(shown) == 38 and all(r["basis"] != "set locally" for r in shown)


def test_the_figures_the_first_release_got_wrong_are_corrected(engine: Engine) -> None:
    figures = seeded_figures()
    ilesi = figures[("ILESI", "typical_time_s")]
    assert (ilesi.value, ilesi.source) == (18.0, "McCormick, Pain Med 2016")
    assert "18 ± 10 s" in ilesi.figure and "n = 366" in ilesi.figure
    for field in ("typical_time_s", "typical_dap_gycm2"):  # not credited to Choi any more
        mbb = figures[("MBB", field)]
        assert mbb.basis is FigureBasis.ESTIMATE and not mbb.source.startswith("Choi")
    for code in ("MBB", "RFA", "FACET"):
        limit = figures[(code, "max_levels")]
        assert (limit.value, limit.basis) == (2, FigureBasis.REGULATION)
        assert "LCD" in limit.source and "L38803" in limit.source
    with read_session(engine) as session:
        rows = {p.code: p for p in session.scalars(select(ProcedureType))}
    assert rows["ILESI"].typical_time_s == 18.0
    assert "18 ± 10 s" in rows["ILESI"].typical_source
    assert [rows[c].max_levels for c in ("MBB", "RFA", "FACET")] == [2, 2, 2]
    assert not rows["MBB"].typical_source.startswith("Choi")

    published = reference_table(load_snapshot(engine), "TFESI")
    cushman = published[published["source"] == "Cushman, Spine J 2016"]
    assert cushman["sample_size"].tolist() == [2443, 2443]  # injections, not 1548 patients
    mbb = reference_table(load_snapshot(engine), "MBB")
    assert all("pooled" in note for note in mbb[mbb["source"] == "Choi, JKMS 2016"]["note"])


def test_effective_dose_coefficients_carry_their_basis(engine: Engine) -> None:
    with read_session(engine) as session:
        settings = load_settings(session)
        source = {s.key: s.source for s in list_settings(session)}["effective_dose_k"]
    coefficients = seeded_coefficients()
    assert {r: c.k for r, c in coefficients.items()} == pytest.approx(
        dict(settings.effective_dose_k))
    lumbar = coefficients["lumbar"]
    assert (lumbar.k, lumbar.tissue_weights, lumbar.source) == (0.33, "ICRP 60",
                                                                "Kim S, AJR 2009")
    assert {c.basis for r, c in coefficients.items() if r != "lumbar"} == {"estimate"}
    assert "ICRP 60" in coefficient_basis("lumbar", 0.33)
    assert "estimate" in coefficient_basis("cervical", 0.08)
    assert "set locally" in coefficient_basis("cervical", 0.1)
    assert "ICRP 60" in source and "estimates" in source and "unverified" not in source


def test_the_icrp_135_thresholds_are_settings_with_their_source(engine: Engine) -> None:
    with read_session(engine) as session:
        settings = load_settings(session)
        rows = {s.key: s for s in list_settings(session)}
    assert (settings.drl_min_rooms, settings.drl_min_room_records) == (10, 20)
    for key in ("drl_min_rooms", "drl_min_room_records"):
        assert rows[key].source.startswith("ICRP Publication 135")
    assert "10-20" in rows["drl_min_rooms"].source


def test_migration_0010_corrects_an_existing_installation_but_not_a_local_change(
        databases: Databases, backend: str) -> None:
    url = databases.empty(backend)
    migrate(url, "0007")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # an administrator had set RFA to 3 levels
            conn.execute(text("UPDATE procedure_type SET max_levels = 3 WHERE code = 'RFA'"))
            before = dict(conn.execute(text("SELECT code, max_levels FROM procedure_type")).all())
        assert (before["ILESI"], before["MBB"], before["FACET"]) == (1, 4, 4)
        migrate(url)
        with engine.connect() as conn:
            after = dict(conn.execute(text("SELECT code, max_levels FROM procedure_type")).all())
            ilesi = conn.execute(text("SELECT typical_time_s FROM procedure_type "
                                      "WHERE code = 'ILESI'")).scalar()
            keys = set(conn.execute(text("SELECT key FROM setting")).scalars())
        assert (after["MBB"], after["FACET"], after["RFA"]) == (2, 2, 3)
        assert ilesi == 18.0
        assert {"drl_min_rooms", "drl_min_room_records"} <= keys
    finally:
        engine.dispose()


def test_the_days_of_background_come_with_their_caution(db_url: str,
                                                        service: ProcedureLog) -> None:
    from audit.auth import cli_actor
    record = service.log(valid_record(), cli_actor(), create_missing=True)
    assert record.background_days is not None
    shown = subprocess.run([sys.executable, "-m", "audit.cli", "--db", db_url, "show",
                            str(record.record_id)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "background_days" in shown.stdout
    assert BACKGROUND_CAUTION in shown.stdout
    assert "NCRP Report 184" in BACKGROUND_CAUTION
