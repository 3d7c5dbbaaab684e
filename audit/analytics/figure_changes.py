"""The figures version: the highest audit event id whose action can change a figure.

Why not the data version (the highest audit event id, audit.analytics.snapshot.data_version):
every sign-in, sign-out, export and alert acknowledgement appends an event, and each would make
every stored figure (audit.analytics.sql.shared) look out of date although no figure changed.
The actions that count are vocab.FIGURE_ACTIONS (the records, settings, names, catalog and
reference levels); the others are left out, and so are the events of vocab.NOT_FIGURE_ENTITIES:
the alert refresh's own (a bulk_create of entity "alert": no figure reads the stored alerts,
and counting it would make every refresh after a write throw away the figures the warmer had
just computed) and the sign-in sessions' (a create and an amend of entity "user_session" at
each sign-in: counted, every sign-in threw away every shared figure, migration 0027). Events
extend one chain under a lock (audit.trail.lock_chain), so ids are committed in order and a
later commit never slips in below a version already read.

The read is one probe of a partial index on audit_event.id over those actions
(ix_audit_event_figures, migration 0021): its cost does not depend on how many events of other
actions follow the last write.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, func, select

from audit.storage.models import AuditEvent
from audit.vocab import FIGURE_ACTIONS, NOT_FIGURE_ENTITIES


def changes_since(conn: Connection, version: int,
                  upto: int) -> tuple[datetime | None, int]:
    """When the write that made figures version `version` happened, and how many writes that
    can change a figure followed it up to `upto` (what a page says of figures "as of" an older
    version, audit.analytics.sql.stale)."""
    when = conn.scalar(select(AuditEvent.occurred_at).where(AuditEvent.id == version))
    count = conn.scalar(select(func.count()).where(
        _CHANGES, AuditEvent.id > version, AuditEvent.id <= upto))
    return when, int(count or 0)


def figures_version(conn: Connection) -> int:
    """The highest id of an event that can change a figure, as this connection sees it (0 on an
    empty trail)."""
    return int(conn.scalar(_QUERY) or 0)


# the actions as literals, not parameters: a prepared statement's generic plan could not prove
# the partial index's condition from $1, $2, ... and would walk the primary key instead
_CHANGES = and_(
    AuditEvent.action.in_(bindparam("figure_actions", FIGURE_ACTIONS, expanding=True,
                                    literal_execute=True)),
    AuditEvent.entity.not_in(bindparam("not_entities", NOT_FIGURE_ENTITIES, expanding=True,
                                       literal_execute=True)))
_QUERY = select(func.max(AuditEvent.id)).where(_CHANGES)
