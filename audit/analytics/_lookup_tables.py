"""The small tables beside the analysis frame: names for its ids, the catalog, the settings and
the active reference levels.

Why separate from the frame query: these are a few hundred rows read whole on every refresh
(cheap, and any of them may have changed), while the records are read once and then only where
the audit trail says they changed (audit.analytics.snapshot).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from audit.catalog import load_catalog
from audit.settings import load_settings
from audit.storage.models import Physician, ReferenceLevel, Room, Setting, Site, UserAccount


def read_lookup_tables(conn: Connection) -> dict[str, Any]:
    """The Snapshot's fields other than the records, as this connection sees them."""
    with Session(bind=conn) as session:
        catalog = load_catalog(session)
        settings = load_settings(session)
    sites = pd.Series(dict(conn.execute(select(Site.id, Site.name)).all()), dtype="str")
    rooms = pd.DataFrame(conn.execute(select(Room.id, Room.name, Room.site_id,
                                             Room.kap_correction_factor)).all(),
                         columns=["id", "name", "site_id", "kap_factor"]).set_index("id")
    if len(rooms):
        ambiguous = rooms["name"].duplicated(keep=False)
        site_names = rooms["site_id"].map(sites)
        rooms["label"] = np.where(ambiguous, site_names + " · " + rooms["name"], rooms["name"])
    else:
        rooms["label"] = pd.Series(dtype="str")
    physicians = pd.Series(dict(conn.execute(select(Physician.id, Physician.name)).all()),
                           dtype="str")
    techs = pd.Series(dict(conn.execute(select(UserAccount.id, UserAccount.username)).all()),
                      dtype="str")
    types = pd.DataFrame(
        [(e.id, e.code, e.name, e.contrast_policy.value, e.realtime_contrast_required,
          e.min_views, e.max_levels if e.max_levels is not None else -1, e.typical_time_s,
          e.typical_dap_gycm2) for e in catalog.entries.values()],
        columns=["id", "code", "name", "policy", "realtime_required", "min_views",
                 "max_levels", "typical_time_s", "typical_dap_gycm2"],
    ).set_index("id")
    levels = pd.DataFrame(
        conn.execute(
            select(ReferenceLevel.id, ReferenceLevel.procedure_type_id, ReferenceLevel.quantity,
                   ReferenceLevel.kind, ReferenceLevel.statistic, ReferenceLevel.value,
                   ReferenceLevel.sample_size, ReferenceLevel.source, ReferenceLevel.note,
                   ReferenceLevel.effective_from)
            .where(ReferenceLevel.active.is_(True)).order_by(ReferenceLevel.id)
        ).all(),
        columns=["id", "type_id", "quantity", "kind", "statistic", "value", "sample_size",
                 "source", "note", "effective_from"],
    )
    sources = dict(conn.execute(select(Setting.key, Setting.source)).all())
    return {"catalog": catalog, "settings": settings, "setting_sources": sources,
            "sites": sites, "rooms": rooms, "physicians": physicians, "technologists": techs,
            "types": types, "reference_levels": levels}
