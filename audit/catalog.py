"""The procedure catalog as immutable objects, loaded once per process and refreshed on change.

Validation and metrics read the catalog constantly; a frozen snapshot keeps them consistent
within one operation and avoids a query per field.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.storage.models import ProcedureType
from audit.vocab import CatalogRegion, ContrastPolicy, Region


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
