"""The shapes an export section is made of: its columns, what it is given, what it returns.

An export is a list of sections (one CSV file each). The runner (audit.export.runner) drives
them, the built-in ones (audit.export.sections, audit.export.summaries) produce them and the
registry (audit.export.registry) lists them; all of them import these types from here, so none
of them needs to import another to agree on a shape, and no import cycle hides behind a
string reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine

from audit.filters import Filters
from audit.settings import Settings

#: Rows per chunk: what a section streams at a time (memory does not grow with the row count).
#: Read at call time (not bound at import), so a test may lower it.
CHUNK_ROWS = 5000


@dataclass(frozen=True)
class Column:
    """One CSV column and its data-dictionary entry."""

    name: str
    kind: str
    unit: str = ""
    allowed: str = ""
    required: str = ""
    description: str = ""


@dataclass
class SectionContext:
    """What a section function gets: one read connection (a consistent snapshot shared by every
    section of the export), the filters, whether PHI may be written, and the settings.
    `cache` is shared by the sections of one export (and filled by their `prepare` steps),
    e.g. for an analysis frame several summaries use."""

    connection: Connection
    filters: Filters
    include_phi: bool
    settings: Settings
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name


@dataclass
class SectionData:
    """A section's columns and its rows in chunks.

    `rendered=True`: cells are final (rendered in SQL with csvsafe.sql_cell); otherwise each
    value is rendered with csvsafe.cell by its column's kind. `lines=True`: each chunk is a
    sequence of whole CSV records (str, no line end; csvsafe.sql_csv_line).
    """

    columns: Sequence[Column]
    chunks: Iterable[Sequence[Any]]
    rendered: bool = False
    lines: bool = False

    @classmethod
    def from_rows(cls, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                  chunk: int | None = None) -> SectionData:
        """Rows of Python values (tuples in column order), e.g. from a SQL aggregate."""
        iterator = iter(rows)
        chunk = chunk or CHUNK_ROWS
        return cls(columns, iter(lambda: list(islice(iterator, chunk)), []))

    @classmethod
    def from_frame(cls, columns: Sequence[Column], frame: Any) -> SectionData:
        """A pandas DataFrame whose columns include every Column name (in any order)."""
        names = [c.name for c in columns]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"the frame lacks columns {missing}")
        return cls.from_rows(columns, frame[names].itertuples(index=False, name=None))


@dataclass(frozen=True)
class Section:
    """A file of an export. `build` returns its SectionData; `count` returns its row count with
    the same filters, for the progress total and the page."""

    name: str
    filename: str
    title: str
    build: Callable[[SectionContext], SectionData]
    count: Callable[[SectionContext], int] | None = None
    #: The filters this section honours (recorded in the manifest) ...
    honours: tuple[str, ...] = ()
    #: ... and the timestamp the period (from, before) applies to.
    period_of: str | None = None
    #: Work before the export's read snapshot is taken, e.g. a write the section's data
    #: depends on (refreshing the stored alerts): (engine, ctx.cache) -> None.
    prepare: Callable[[Engine, dict[str, Any]], None] | None = None

    def run(self, ctx: SectionContext) -> SectionData:
        return self.build(ctx)

    def rows(self, ctx: SectionContext) -> int | None:
        return None if self.count is None else int(self.count(ctx))

    def prepare_for(self, engine: Engine, cache: dict[str, Any]) -> None:
        if self.prepare is not None:
            self.prepare(engine, cache)
