"""The physician scorecard: who uses more dose than their peers for the same work?

Why normalised: physicians do different procedures and treat different numbers of levels, and
dose rises with both, so raw medians would rank case mix, not technique. Each physician's median
KAP and time per level of each procedure is divided by everyone's median for that procedure
under the same filters, and the ratios are averaged weighted by records (docs/design.md §3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.analytics.compliance import compliance
from audit.analytics.dose_stats import technique_use
from audit.analytics.grouping import group_codes, quantiles_by
from audit.analytics.reference_levels import share_above_reference
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters

#: A KAP-per-level ratio above this is highlighted on the Dose page: half again the peers' dose
#: for the same procedures and levels is more than case mix explains once normalised, so it is
#: worth a conversation about technique (a prompt to look, not a verdict).
HIGHLIGHT_RATIO = 1.5


def physician_scorecard(snap: Snapshot, filters: Filters,
                        levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per physician, normalised for procedure mix and levels treated: the median KAP and time
    per level of each procedure they performed divided by everyone's median for that
    procedure (same filters), averaged over their procedures weighted by records. 1.0 is
    typical; 2.0 is twice the peers' dose for the same work. Also the share above the
    reference level, pulsed and low-dose use and compliance."""
    mask = filters.mask(snap)
    physicians = group_codes(snap, "physician")[1]
    out = pd.DataFrame({"physician": physicians})
    out["records"] = np.bincount(snap.records["physician_id"].to_numpy()[mask],
                                 minlength=len(physicians))[:len(physicians)]
    for q, name in (("dap_gycm2", "kap_per_level_ratio"),
                    ("fluoro_time_s", "time_per_level_ratio")):
        _, cell_n, (cell_median,) = quantiles_by(snap, mask, ("physician", "procedure"), q,
                                                     (0.5,), per_level=True)
        types, _, (type_median,) = quantiles_by(snap, mask, ("procedure",), q, (0.5,),
                                                per_level=True)
        n_types = len(types)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = cell_median / np.tile(type_median, len(cell_median) // max(n_types, 1))
        ratio = ratio.reshape(-1, max(n_types, 1))
        weights = cell_n.reshape(-1, max(n_types, 1)).astype(np.float64)
        usable = ~np.isnan(ratio) & (weights > 0)
        total = np.where(usable, weights, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(total > 0, np.where(usable, ratio * weights, 0).sum(axis=1)
                                 / total, np.nan)
    above = share_above_reference(snap, filters, "physician", levels=levels)
    technique = technique_use(snap, filters, "physician")
    rates = compliance(snap, filters, "physician")
    out = out[out["records"] > 0]
    out = out.merge(above[["physician", "share_above"]], on="physician", how="left")
    out = out.merge(technique[["physician", "pulsed_rate", "low_dose_rate"]], on="physician",
                    how="left")
    out = out.merge(rates[["physician", "rate"]].rename(columns={"rate": "compliance_rate"}),
                    on="physician", how="left")
    return out.sort_values("physician", key=lambda s: s.str.lower()).reset_index(drop=True)
