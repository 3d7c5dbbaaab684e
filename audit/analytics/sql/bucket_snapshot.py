"""The dose buckets' snapshot (audit.analytics.sql.bucket_quantiles says how the buckets answer):
which filters they answer (`answerable`, `scanned_because`), and the REPEATABLE READ
connection every figure from them reads in, where the buckets and the record facts reflect
the same data version (`snapshot`).

Why a module of its own: every figure of the Dose page opens one (the Physicians tab five at
once), so its cost is paid per figure. It reads everything it checks in one statement, asks
the refresh only where that statement shows the tables behind, and keeps the month edges'
probe per facts state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from audit.analytics.snapshot import Snapshot
from audit.analytics.sql import month_cells
from audit.analytics.sql.dose_buckets import QUANTITIES, refresh_buckets, rules_of
from audit.analytics.sql.kept import Kept
from audit.analytics.sql.records import HALF_SECOND
from audit.analytics.sql.summary_counts import edges_clear
from audit.filters import Filters
from audit.storage.engine import without_jit
from audit.storage.types import UTCDateTime
from audit.vocab import RecordStatus


def answerable(filters: Filters, quantity: str, by_physician: bool = False) -> bool:
    """Whether the buckets hold what the filters select (module doc; the caller still probes
    the half second before the months' and the period's edges); `by_physician`: as below."""
    return quantity in QUANTITIES and scanned_because(filters, by_physician) is None


def scanned_because(filters: Filters, by_physician: bool = False) -> str | None:
    """Why the buckets cannot answer these filters, as a page may say it (None: they can);
    `by_physician`: for figures per physician (the physician scorecards' cells, which hold
    rooms and physicians together)."""
    if filters.patient_id:
        return "A patient filter"
    if filters.record_ids is not None:
        return "A list of records"
    if filters.technologists:
        return "A technologist filter"
    if filters.record_status != RecordStatus.FINAL.value:
        return "Records other than the final ones"
    if (filters.rooms or filters.sites) and filters.physicians and not by_physician:
        return "A room or site together with a physician (either alone answers at once)"
    if not all(moment is None or moment.timestamp() % 86400 == 0
               for moment in (filters.start, filters.before)):
        return "A period that is not whole days"
    return None



@contextmanager
def snapshot(engine: Engine, lookups: Snapshot, filters: Filters, quantity: str,
             by_physician: bool = False) -> Iterator[tuple[Connection, Filters] | None]:
    """A REPEATABLE READ connection in which the buckets and the facts reflect the same data
    version, after bringing the buckets to it, and the filters without a period bound no
    record lies beyond (`_open_ends`); None where the buckets do not answer the filters (for
    figures per physician: `by_physician`), or a write came between the refresh and the
    snapshot (the caller scans).

    Every figure of a page opens one, so the common case costs one statement: the snapshot
    reads the states, the data head and the facts' span at once, and where both tables are
    at the head it answers without asking the refresh (which would read the same again on a
    connection of its own); only otherwise it refreshes and opens a new snapshot. The month
    edges' probe is kept per facts state (`_EDGES`): it depends only on the facts."""
    if not answerable(filters, quantity, by_physician):
        yield None
        return
    rules = rules_of(lookups)
    for refreshed in (False, True):
        if refreshed:
            refresh_buckets(engine, lookups)
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            without_jit(conn)
            state = _state(conn)
            if state is None or state.rules != rules or state.version != state.facts_version:
                if refreshed:
                    break
                continue
            if state.version != state.head and not refreshed:
                continue  # written since: refresh first
            conn.execution_options(bucket_stamp=state.stamp)
            if not _edges_clear(conn, filters, state):
                break
            yield conn, _open_ends(filters, state.oldest, state.newest)
            return
    yield None


def _edges_clear(conn: Connection, filters: Filters, state: _State) -> bool:
    """summary_counts.edges_clear of the facts from the first record's month to the last's,
    kept by the facts' state (its row's xmin: a rewrite, even to the same version, probes
    again) and the period (`_EDGES`)."""
    if state.oldest is None or state.newest is None:
        return True
    oldest, newest = state.oldest.astimezone(UTC).date(), state.newest.astimezone(UTC).date()
    return _EDGES.get(
        (state.stamp, state.facts_state, oldest, newest, filters.start, filters.before),
        lambda: edges_clear(conn, filters, oldest, newest, facts=True),
        stale=lambda k: state.stamp.outdates(k[0]))


@dataclass(frozen=True)
class _State:
    """What `snapshot` checks, as one statement reads it in the snapshot."""

    stamp: month_cells.Stamp
    facts_version: int
    facts_state: str
    head: int
    oldest: datetime | None
    newest: datetime | None

    @property
    def version(self) -> int:
        return self.stamp.version

    @property
    def rules(self) -> int:
        return self.stamp.rules


#: _edges_clear's answers, the most recently used (a period each).
_EDGES: Kept[bool] = Kept(64)

_STATE = text(
    "SELECT d.oid::bigint, b.xmin::text, b.data_version, b.rules, f.data_version, "
    "f.xmin::text, (SELECT coalesce(max(id), 0) FROM audit_event), "
    "(SELECT min(performed_at) FROM record_fact) AS oldest, "
    "(SELECT max(performed_at) FROM record_fact) AS newest "
    "FROM dose_bucket_state b, record_fact_state f, pg_database d "
    "WHERE b.id = 1 AND f.id = 1 AND d.datname = current_database()"
).columns(oldest=UTCDateTime(), newest=UTCDateTime())


def _state(conn: Connection) -> _State | None:
    """The buckets' and facts' states, the data head and the facts' span in this snapshot;
    None before the first refresh."""
    found = conn.execute(_STATE).first()
    if found is None:
        return None
    database, xmin, version, rules, facts_version, facts_state, head, oldest, newest = found
    return _State(month_cells.Stamp(conn.engine.url.render_as_string(), int(database),
                                    str(xmin), int(version), int(rules)),
                  int(facts_version), str(facts_state), int(head), oldest, newest)


def _open_ends(filters: Filters, oldest: datetime | None,
               newest: datetime | None) -> Filters:
    """The filters without a period bound that selects nothing: a start no later than the
    oldest record's instant, a `before` after the newest's (half a second each way, as
    period_conditions shifts them). The same records, and a period of whole months where
    its cut ends held no record ("Last 12 months" ends on the newest record's day): the
    month rows answer it, no day of the facts is counted."""
    if oldest is None or newest is None:
        return filters
    start, before = filters.start, filters.before
    if start is not None and oldest >= start - HALF_SECOND:
        start = None
    if before is not None and newest < before - HALF_SECOND:
        before = None
    return replace(filters, start=start, before=before)
