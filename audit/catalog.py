"""The procedure catalog as immutable objects, loaded once per process and refreshed on change;
and where each seeded catalog figure comes from.

Validation and metrics read the catalog constantly; a frozen snapshot keeps them consistent
within one operation and avoids a query per field.

Each number the migrations seed into the catalog (typical time and KAP, maximum levels, maximum
expected time) has a row in audit/data/catalog_figures.csv: the paper and the number it takes,
or the regulation, or "estimate" / "local policy" (docs/reference.md §5, §7). The file is read
once; a value an administrator has changed since is reported as set locally.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.storage.models import ProcedureType
from audit.vocab import CatalogRegion, ContrastPolicy, FigureBasis, Region

#: The catalog columns that are domain figures, each with a source in catalog_figures.csv.
FIGURE_FIELDS = ("typical_time_s", "typical_dap_gycm2", "max_levels", "max_expected_time_s")


@dataclass(frozen=True)
class CatalogEntry:
    id: int
    code: str
    name: str
    region: CatalogRegion
    level_regions: frozenset[Region]
    levels_required: bool
    max_levels: int | None
    laterality_required: bool
    contrast_policy: ContrastPolicy
    realtime_contrast_required: bool
    min_views: int
    typical_time_s: float | None
    typical_dap_gycm2: float | None
    max_expected_time_s: float | None
    typical_source: str | None
    active: bool

    @classmethod
    def from_row(cls, row: ProcedureType) -> CatalogEntry:
        regions = frozenset(Region(r) for r in (row.level_regions or "").split(";") if r)
        return cls(
            id=row.id, code=row.code, name=row.name, region=CatalogRegion(row.region),
            level_regions=regions, levels_required=row.levels_required,
            max_levels=row.max_levels, laterality_required=row.laterality_required,
            contrast_policy=ContrastPolicy(row.contrast_policy),
            realtime_contrast_required=row.realtime_contrast_required,
            min_views=row.min_views, typical_time_s=row.typical_time_s,
            typical_dap_gycm2=row.typical_dap_gycm2, max_expected_time_s=row.max_expected_time_s,
            typical_source=row.typical_source, active=row.active,
        )

    @property
    def contrast_required(self) -> bool:
        return self.contrast_policy is ContrastPolicy.REQUIRED


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]

    def active_codes(self) -> list[str]:
        return [code for code, e in self.entries.items() if e.active]

    def lookup(self, code: str) -> CatalogEntry | None:
        return self.entries.get(code.strip().upper())


def load_catalog(session: Session) -> Catalog:
    rows = session.scalars(select(ProcedureType).order_by(ProcedureType.id)).all()
    return Catalog({row.code: CatalogEntry.from_row(row) for row in rows})


@dataclass(frozen=True)
class CatalogFigure:
    """One seeded catalog figure and what it rests on."""

    code: str
    field: str
    value: float
    basis: FigureBasis
    source: str
    figure: str  # the number taken and what it describes, e.g. "mean 18 ± 10 s, n = 366"


@cache
def seeded_figures() -> dict[tuple[str, str], CatalogFigure]:
    """(code, field) -> the seeded figure with its source (audit/data/catalog_figures.csv)."""
    text = resources.files("audit").joinpath("data/catalog_figures.csv").read_text("utf-8")
    return {(r["code"], r["field"]): CatalogFigure(
                r["code"], r["field"], float(r["value"]), FigureBasis(r["basis"]), r["source"],
                r["figure"])
            for r in csv.DictReader(text.splitlines())}


def figure_sources(catalog: Catalog) -> list[dict[str, Any]]:
    """Every figure of the active catalog entries with its basis and source: the seeded source
    while the value is the seeded one, else "set locally" with the entry's typical_source."""
    seeded = seeded_figures()
    rows = []
    for entry in catalog.entries.values():
        if not entry.active:
            continue
        for name in FIGURE_FIELDS:
            value = getattr(entry, name)
            if value is None:
                continue
            known = seeded.get((entry.code, name))
            if known is not None and abs(float(value) - known.value) < 1e-9:
                basis, source, figure = known.basis.value, known.source, known.figure
            else:
                basis, source = "set locally", entry.typical_source or "no source given"
                figure = "changed from the seeded value" if known else "not seeded"
            rows.append({"procedure": entry.code, "figure_field": name, "value": value,
                         "basis": basis, "source": source, "figure": figure})
    return rows
