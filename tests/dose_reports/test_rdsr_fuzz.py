"""Fuzz: mutated dose reports through the same path as `import rdsr`, on a real database.

Hypothesis builds mutants of the three real files (cut down to their first irradiation events,
so a parse costs milliseconds) and of rdsr_builder reports: truncation at any offset, byte
flips, content items and top-level elements removed or repeated, extreme numbers in DS text and
FD values (1e308, -1, NaN, inf, 1e-320, 400-digit strings), wrong units and absurd dates and
texts. Each goes through DoseImporter.import_bytes in-process. Most are rejected by the reader
without touching the database; those that parse are stored (each gets its own SOP instance UID,
some share a study to exercise supersession, and logged procedures make reconciliation fill and
compare). Asserted, per backend:

- no exception escapes: every mutant ends as ok, rejected or duplicate;
- no partial write: a mutant that is not stored leaves dose reports, discrepancies, audit events
  and procedures exactly as they were;
- nothing non-finite is stored: every float column and every number in every JSON column of
  every table is finite afterwards (a row that was stored respects the dictionary's bounds).
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, TypeVar

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import JSON, Engine, Float, func, select
from sqlalchemy.orm import Session

from audit.auth import Actor
from audit.dose_reports.store import DoseImporter, ImportResult
from audit.log.service import ProcedureLog
from audit.storage.models import (
    AuditEvent,
    DoseDiscrepancy,
    DoseReport,
    IrradiationEvent,
    Procedure,
)
from audit.storage.types import Base

from .dose_helpers import REAL_FILES, log_procedure
from .rdsr_builder import (
    PLANE_A,
    PLANE_B,
    EventSpec,
    PlaneSpec,
    build_rdsr,
    fluoro_totals,
)
from .rdsr_mutations import Choices, Span, mutate, spans, with_uids

T = TypeVar("T")

#: Mutants per backend; each backend's run stays around a minute on a loaded 2-core machine.
#: FLUORO_AUDIT_FUZZ_EXAMPLES=20000 runs a longer campaign.
EXAMPLES = int(os.environ.get("FLUORO_AUDIT_FUZZ_EXAMPLES", "1000"))


# --- seeds -------------------------------------------------------------------------------------

def _prune(ds: Dataset, keep_events: int = 2) -> Dataset:
    """The real report with only its first irradiation events (the totals stay): the vendor's
    structure at a tenth of the parse time."""
    def visit(items: Any) -> None:
        seen = 0
        for item in list(items):
            names = item.get("ConceptNameCodeSequence")
            if names and names[0].get("CodeValue") == "113706":
                seen += 1
                if seen > keep_events:
                    items.remove(item)
                    continue
            if "ContentSequence" in item:
                visit(item.ContentSequence)

    visit(ds.ContentSequence)
    return ds


def _encode(ds: Dataset) -> bytes:
    if not hasattr(ds, "file_meta"):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@cache
def seeds() -> tuple[bytes, ...]:
    """Encoded once: the real files (pruned) and builder reports (single plane, biplane in
    other units, totals nested one container deeper, a UTC offset)."""
    real = [_prune(pydicom.dcmread(path)) for path in REAL_FILES]
    built = [
        build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())], events=[EventSpec()]),
        build_rdsr(planes=[PlaneSpec(PLANE_A, fluoro_totals(2.0, "uGy.m2")),
                           PlaneSpec(PLANE_B, fluoro_totals(0.5, "dGy.cm2", dose=3,
                                                            dose_unit="Gy"))],
                   events=[EventSpec(plane=PLANE_A), EventSpec(plane=PLANE_B, pulse_rate=15)]),
        build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(fluoro_time=2, dose=0.4),
                                     nest_totals=True)],
                   events=[EventSpec(mode=None, pulse_rate=None)], timezone_offset="-0500"),
    ]
    return tuple(_encode(ds) for ds in (*real, *built))


class Drawn:
    """Choices drawn by Hypothesis, so it can replay and shrink them."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def pick(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))


@cache
def _layouts(seed: int) -> tuple[list[Span], list[Span]]:
    """The element layout of a seed, and of the seed after with_uids (which UIDs of a fixed
    width keep the same for every mutant)."""
    before = spans(seeds()[seed])
    return before, spans(with_uids(seeds()[seed], _SOP.format(0, 0), _STUDY.format(0, 0)))


_SOP, _STUDY = "2.25.{:09d}{}", "2.25.{}{:09d}"


def mutant(draw: Choices, number: int) -> bytes:
    """One mutant: a seed with a SOP instance UID of its own (``number``) and a fresh or
    shared study (reports of one study supersede each other), then mutated."""
    # Fixed widths: the bytes' length must depend on the draws alone, or Hypothesis cannot
    # replay a mutant (offsets are drawn within that length).
    again = draw.integer(0, 7) == 0  # most likely a SOP instance stored before: a duplicate
    sop = _SOP.format(draw.integer(1, 40) if again else number, draw.integer(0, 1))
    shared = draw.integer(0, 3) == 0
    study = _STUDY.format(7, draw.integer(0, 24)) if shared else _STUDY.format(8, number)
    seed = draw.integer(0, len(seeds()) - 1)
    before, after = _layouts(seed)
    return mutate(with_uids(seeds()[seed], sop, study, before), draw, after)


# --- the database ---------------------------------------------------------------------------------

def state(engine: Engine) -> tuple[int, ...]:
    """What a rejected mutant must leave unchanged: rows of every table an import writes,
    and the procedures' versions (a fill bumps them)."""
    with Session(engine) as session:
        return (
            *(session.scalar(select(func.count()).select_from(model)) or 0
              for model in (DoseReport, DoseDiscrepancy, AuditEvent, IrradiationEvent)),
            session.scalar(select(func.coalesce(func.sum(Procedure.version), 0))) or 0,
        )


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def non_finite_cells(engine: Engine) -> list[tuple[str, str, Any]]:
    """(table, column, value) of every NaN or infinity stored, in float or JSON columns."""
    found = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, Float | JSON)]
            if not columns:
                continue
            for row in connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if _non_finite(value):
                        found.append((table.name, column.name, value))
    return found


def out_of_bounds_reports(engine: Engine) -> list[tuple[int, str, float]]:
    from audit.dose_reports.bounds import QUANTITIES

    found = []
    with Session(engine) as session:
        for row in session.scalars(select(DoseReport)):
            for name, quantity in QUANTITIES.items():
                value = getattr(row, name)
                low, high = quantity.bounds()
                if value is not None and not low <= value <= high:
                    found.append((row.id, name, value))
    return found


@pytest.fixture
def quiet_pydicom() -> Iterator[None]:
    """pydicom logs a warning per invalid value it reads or writes: thousands here."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def fuzz_log(service: ProcedureLog, admin: Actor) -> None:
    """Procedures the seeds match by accession (builder ACC-1 and the three real files), with
    no Ka,r (filled) and a manual DAP (compared)."""
    for accession, patient in (("ACC-1", "MRN-1"), ("A202012100754408", "P-104"),
                               ("A202012100819169", "P-601"), ("SERUME0006506591", "PAT-0555")):
        log_procedure(service, admin, patient_id=patient, accession_number=accession,
                      performed_at="2024-03-15T09:00:00+00:00", air_kerma_mgy=None,
                      dap_value=1.0)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore")
def test_mutated_reports_never_crash_write_partially_or_store_non_finite_numbers(
    engine: Engine, admin: Actor, fuzz_log: None, quiet_pydicom: None
) -> None:
    importer = DoseImporter(engine, admin)
    outcomes: dict[str, int] = {}
    numbers = itertools.count(1)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: st.DataObject) -> None:
        number = next(numbers)
        payload = mutant(Drawn(data), number)

        before = state(engine)
        result = importer.import_bytes(payload, f"mutant-{number}.dcm")
        assert isinstance(result, ImportResult)
        assert result.status in ("ok", "rejected", "duplicate"), result
        outcomes[result.status] = outcomes.get(result.status, 0) + 1
        if result.status != "ok":
            assert state(engine) == before, result.reason
        else:
            assert not _non_finite(result.totals), result

    run()
    assert sum(outcomes.values()) >= EXAMPLES, outcomes
    # A good share reached the database and was stored; some were duplicates; many rejected.
    assert outcomes.get("ok", 0) >= EXAMPLES // 5, outcomes
    assert outcomes.get("duplicate", 0) >= EXAMPLES // 100, outcomes
    assert outcomes.get("rejected", 0) >= EXAMPLES // 4, outcomes
    assert non_finite_cells(engine) == []
    assert out_of_bounds_reports(engine) == []
