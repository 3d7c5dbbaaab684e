"""Which database the demo writes to, and whether it may: demo data stays out of real data.

Why: `fluoro-audit demo` once loaded its records into the live database, under real-looking
accounts, and a procedure can never be deleted (only voided, which keeps it in the audit
trail). So:

- Without --db or FLUORO_AUDIT_DB, `demo` and `serve --demo` use a database of their own,
  var/fluoro-audit-demo.sqlite3, with its own key directory beside it
  (var/fluoro-audit-demo.keys/, whatever FLUORO_AUDIT_KEY_DIR says), so the demo never shares
  the site's trail, pseudonym or signing keys either.
- `demo` refuses a database holding any procedure the demo loader did not write, unless
  --force; the check only reads (`census`), before anything is migrated or created.

A demo record is one whose created_by is the loader's actor, "demo" (audit.demo.cast), which no
account is called; if an account named "demo" exists, its records could be anyone's, so none
counts as demo data. Records logged by hand into a demo database (even as demo-tech1) are not
demo records: the loader cannot know what they are, and refuses until told (--force).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

from audit.demo.cast import DEMO_ACTOR
from audit.keys import ENV_KEY_DIR, ENV_PSEUDONYM_KEY, ENV_SIGNING_KEY, ENV_TRAIL_KEY, key_dir
from audit.storage.engine import ENV_DB, make_engine, normalise_url
from audit.storage.models import Procedure, UserAccount

DEMO_SQLITE_PATH = Path("var") / "fluoro-audit-demo.sqlite3"


def demo_url(db: str | None) -> tuple[str, bool]:
    """(URL, whether it is the demo's own database): `db` when given (the --db option),
    else FLUORO_AUDIT_DB, else the demo's own SQLite file under ./var/."""
    if db:
        return db, False
    if os.environ.get(ENV_DB):
        return os.environ[ENV_DB], False
    return f"sqlite:///{DEMO_SQLITE_PATH}", True


def use_own_keys(url: str) -> Path:
    """Point this process (and the dashboard it starts) at the key directory beside the demo's
    own database, and drop keys injected through the environment: they are the site's."""
    for name in (ENV_KEY_DIR, ENV_TRAIL_KEY, ENV_PSEUDONYM_KEY, ENV_SIGNING_KEY):
        os.environ.pop(name, None)
    keys = key_dir(url)
    os.environ[ENV_KEY_DIR] = str(keys)
    return keys


@dataclass(frozen=True)
class Census:
    """What the database holds, as far as the demo is concerned."""

    procedures: int = 0
    demo: int = 0
    #: Records not written by the demo loader, by created_by (most first).
    others: dict[str, int] = field(default_factory=dict)

    @property
    def other(self) -> int:
        return self.procedures - self.demo

    def describe_others(self, limit: int = 3) -> str:
        names = [f"{name} ({count:,})" for name, count in list(self.others.items())[:limit]]
        more = len(self.others) - limit
        return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def census(url: str) -> Census:
    """Count the procedures and which of them the demo loader wrote. Reads only: an absent
    SQLite file is not created, and a database without the schema yet holds nothing."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        return Census()
    engine = make_engine(parsed.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if Procedure.__tablename__ not in tables:
                return Census()
            rows = conn.execute(select(Procedure.created_by, func.count())
                                .group_by(Procedure.created_by)).all()
            named_demo = conn.scalar(select(func.count()).select_from(UserAccount)
                                     .where(UserAccount.username == DEMO_ACTOR)) if \
                UserAccount.__tablename__ in tables else 0
    finally:
        engine.dispose()
    by_creator = {str(creator): int(count) for creator, count in rows}
    demo = 0 if named_demo else by_creator.pop(DEMO_ACTOR, 0)
    others = dict(sorted(by_creator.items(), key=lambda item: (-item[1], item[0])))
    return Census(procedures=demo + sum(others.values()), demo=demo, others=others)


def refusal(shown_url: str, found: Census) -> str:
    """Why `demo` will not write into this database, and the two ways on."""
    noun = "record" if found.other == 1 else "records"
    return (f"{shown_url} holds {found.other:,} procedure {noun} not written by the demo "
            f"loader (created by {found.describe_others()}); demo records would mix with "
            "them in every list, dashboard, report and export, and records cannot be deleted "
            f"(only voided). Load the demo into its own database (leave out --db and "
            f"{ENV_DB}: {DEMO_SQLITE_PATH}) or another empty one, or add --force to load it "
            "here anyway. Nothing was written.")


def forced(shown_url: str, found: Census, procedures: int) -> str:
    """What --force is about to do, said before it is done."""
    noun = "record" if found.other == 1 else "records"
    return (f"--force: adding {procedures:,} demo records to {shown_url}, beside "
            f"{found.other:,} {noun} not written by the demo loader (created by "
            f"{found.describe_others()}). The demo records cannot be deleted afterwards, only "
            "voided; their names all say \"demo\" and their created_by is \"demo\".")
