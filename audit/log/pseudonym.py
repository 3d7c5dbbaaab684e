"""The keyed patient pseudonym (patient_ref) that stands in for the MRN without PHI access.

Why keyed: a plain hash of an MRN can be reversed by hashing every possible MRN; an HMAC with a
site secret cannot, yet the same patient gets the same reference in every export, so records
can still be grouped by patient. The secret comes from the environment when set (so it need
not live in the database), else from the `pseudonym_secret` setting.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from audit.settings import Settings

ENV_PSEUDONYM_KEY = "FLUORO_AUDIT_PSEUDONYM_KEY"


def pseudonym(secret: str, mrn: str) -> str:
    """Keyed, irreversible patient reference: HMAC-SHA-256(site secret, MRN), 20 hex digits."""
    digest = hmac.new(secret.encode(), mrn.encode("utf-8"), hashlib.sha256).hexdigest()
    return "P" + digest[:20].upper()


def site_secret(settings: Settings) -> str:
    """The pseudonym key: $FLUORO_AUDIT_PSEUDONYM_KEY if set, else the stored setting."""
    return os.environ.get(ENV_PSEUDONYM_KEY) or str(settings.pseudonym_secret)
