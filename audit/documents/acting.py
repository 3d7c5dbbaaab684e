"""Who a document is made by when it is made from the command line with `--as USER`.

The command line otherwise acts with full rights (audit.auth.cli_actor). Documents name a
person in their audit event and some are for certain roles only (the patient history: rso and
admin), so `--as` lets a site run them under an account whose role is then checked like the
app's. Only an active account is accepted.
"""

from __future__ import annotations

from sqlalchemy import Engine

from audit.auth import Actor, get_user
from audit.errors import PermissionDenied
from audit.storage.engine import read_session
from audit.vocab import Role


def account_actor(engine: Engine, username: str) -> Actor:
    """The actor of an active account. Raises NotFound (no such account) or PermissionDenied
    (deactivated)."""
    with read_session(engine) as session:
        user = get_user(session, username)
        if not user.active:
            raise PermissionDenied(f"{username} is deactivated and may not act")
        return Actor(username=user.username, role=Role(user.role))
