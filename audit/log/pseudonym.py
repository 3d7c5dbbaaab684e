"""The keyed patient pseudonym (patient_ref) that stands in for the MRN without PHI access.

Why keyed: a plain hash of an MRN can be reversed by hashing every possible MRN; an HMAC with a
site key cannot, yet the same patient gets the same reference in every export, so records can
still be grouped by patient. The key lives outside the database (audit.keys: a 0600 file beside
it, or $FLUORO_AUDIT_PSEUDONYM_KEY), so a dump of the database alone cannot map a reference back
to its MRN.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from audit.keys import ENV_PSEUDONYM_KEY, load_keys

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

__all__ = ["ENV_PSEUDONYM_KEY", "pseudonym", "site_secret"]


def pseudonym(secret: str, mrn: str) -> str:
    """Keyed, irreversible patient reference: HMAC-SHA-256(site key, MRN), 20 hex digits."""
    digest = hmac.new(secret.encode(), mrn.encode("utf-8"), hashlib.sha256).hexdigest()
    return "P" + digest[:20].upper()


def site_secret(where: Engine | Session) -> str:
    """The pseudonym key of the database `where` is bound to (audit.keys)."""
    engine = where if not hasattr(where, "get_bind") else where.get_bind()
    return load_keys(engine).pseudonym_key  # type: ignore[arg-type]
