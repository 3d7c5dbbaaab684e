"""Re-key the audit chain: every event's MAC becomes HMAC-SHA-256 under the site's trail key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Until now each event's hash was plain SHA-256 over its content and the previous hash, so anyone
who could write the table could edit an event and recompute every later hash, or append a
forged event with a correct one. From here on the MAC needs the trail key, kept outside the
database (audit.keys, made by 0006).

The upgrade first checks every event against the old chain, then rewrites prev_hash and hash in
id order (in chunks: a million events take minutes, not memory), with the append-only trigger
dropped for the rewrite and recreated in the same transaction. It then appends one event that
keeps the fact in the history: whether the legacy chain was intact, or where it was broken,
because once re-keyed a break in the old chain would no longer show. The downgrade writes plain
SHA-256 back (and says so in one more event).

Stop the application servers before upgrading: an older server still running would append
unkeyed events after the rewrite.
"""
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
GENESIS = "0" * 64
ACTOR = "system"
#: The append-only guard of migration 0002 (SQLite: one trigger per verb).
MESSAGE = "audit_event is append-only: UPDATE and DELETE are refused"
#: audit.trail's advisory lock key: no writer may extend the chain while it is rewritten.
_PG_CHAIN_LOCK = 0x466C756F

_event = sa.Table(
    "audit_event", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("occurred_at", UTCDateTime()),
    sa.Column("actor", sa.String), sa.Column("action", sa.String),
    sa.Column("entity", sa.String), sa.Column("entity_id", sa.String),
    sa.Column("reason", sa.Text), sa.Column("before", sa.JSON), sa.Column("after", sa.JSON),
    sa.Column("prev_hash", sa.String), sa.Column("hash", sa.String),
)

Mac = Callable[..., str]


def _drop_guard(bind: sa.Connection) -> None:
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event")


def _create_guard(bind: sa.Connection) -> None:
    if bind.dialect.name == "sqlite":
        op.execute("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
                   f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")
    else:
        op.execute("CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
                   "FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change()")


def _content(row: Any) -> tuple[Any, ...]:
    return (row.occurred_at, row.actor, row.action, row.entity, row.entity_id, row.reason,
            row.before, row.after)


def _rewrite(bind: sa.Connection, check: Mac, write: Mac) -> tuple[int, int | None, str | None,
                                                                    str]:
    """Check every event against the chain `check` computes and rewrite it with `write`, in id
    order, chunk by chunk. Returns (events, first broken id, its problem, the new last MAC)."""
    update = (sa.update(_event).where(_event.c.id == sa.bindparam("i"))
              .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h")))
    old_prev, new_prev, count, last_id = GENESIS, GENESIS, 0, 0
    broken: tuple[int, str] | None = None
    while True:
        rows = bind.execute(sa.select(_event).where(_event.c.id > last_id)
                            .order_by(_event.c.id).limit(CHUNK)).all()
        if not rows:
            break
        changes = []
        for row in rows:
            count += 1
            if broken is None:
                if row.prev_hash != old_prev:
                    broken = (row.id, "its previous-hash does not match the event before it "
                                      "(an event was removed or inserted)")
                elif row.hash != check(row.prev_hash, *_content(row)):
                    broken = (row.id, "its content does not match its hash (the event was "
                                      "altered)")
            old_prev = row.hash
            mac = write(new_prev, *_content(row))
            changes.append({"i": row.id, "p": new_prev, "h": mac})
            new_prev = mac
        bind.execute(update, changes)
        last_id = rows[-1].id
    return count, broken[0] if broken else None, broken[1] if broken else None, new_prev


def _append(bind: sa.Connection, prev: str, mac: Mac, reason: str,
            before: dict[str, Any], after: dict[str, Any]) -> tuple[int, str]:
    from audit.storage.types import utcnow
    from audit.trail import jsonable

    at = utcnow()
    before_j, after_j = jsonable(before), jsonable(after)
    content = (at, ACTOR, "setting", "audit_trail", "mac", reason, before_j, after_j)
    digest = mac(prev, *content)
    result = bind.execute(sa.insert(_event).values(
        occurred_at=at, actor=ACTOR, action="setting", entity="audit_trail", entity_id="mac",
        reason=reason, before=before_j, after=after_j, prev_hash=prev, hash=digest))
    return int(result.inserted_primary_key[0]), digest


def _lock(bind: sa.Connection) -> None:
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})


def upgrade() -> None:
    from functools import partial

    from audit import checkpoints
    from audit.keys import load_keys
    from audit.trail import event_hash, legacy_event_hash

    bind = op.get_bind()
    keyed = partial(event_hash, key=load_keys(bind.engine).trail_key)
    _lock(bind)
    _drop_guard(bind)
    count, broken_at, problem, last = _rewrite(bind, legacy_event_hash, keyed)
    _create_guard(bind)
    if not count:
        return  # a new installation: nothing to re-key, nothing to report
    if broken_at is None:
        reason = (f"chain re-keyed with HMAC-SHA-256; legacy SHA-256 chain verified intact: "
                  f"{count} events")
        legacy = {"legacy_chain": "intact", "events": count}
    else:
        reason = (f"chain re-keyed with HMAC-SHA-256; legacy chain broken at event "
                  f"{broken_at}: {problem}")
        legacy = {"legacy_chain": "broken", "events": count, "broken_at": broken_at,
                  "problem": problem}
    event_id, mac = _append(bind, last, keyed, reason, {"mac": "SHA-256"},
                            {"mac": "HMAC-SHA-256", **legacy})
    checkpoints.note_pending(bind.info, checkpoints.path_for(bind), event_id, mac)


def downgrade() -> None:
    from functools import partial

    from audit.keys import load_keys
    from audit.trail import event_hash, legacy_event_hash

    bind = op.get_bind()
    keyed = partial(event_hash, key=load_keys(bind.engine).trail_key)
    _lock(bind)
    _drop_guard(bind)
    count, broken_at, problem, last = _rewrite(bind, keyed, legacy_event_hash)
    _create_guard(bind)
    if not count:
        return
    state = "intact" if broken_at is None else f"broken at event {broken_at}: {problem}"
    _append(bind, last, legacy_event_hash,
            f"chain written back as plain SHA-256 (schema downgrade); keyed chain {state}",
            {"mac": "HMAC-SHA-256"}, {"mac": "SHA-256", "keyed_chain": state, "events": count})
