"""Fair dose comparisons (issue 15): BMI bands, C-arm operators, the radiation-free share, and a
physician scorecard adjusted for case mix by indirect standardisation.

Why: dose about doubles from normal-weight to obese patients (Cushman 2016), and fluoro time
differs tenfold with who drives the C-arm (Choi 2016), so a physician with heavier patients
looks worse without being worse. The adjusted scorecard compares each physician with what
their peers give the same kind of case.

Method (docs/design.md §3, written under the chart too): each record's expected dose is the
median of its stratum (procedure type x levels treated x WHO BMI band, "unknown" a band of its
own) over every physician under the same filters; a physician's adjusted ratio is the median,
over their records, of observed / expected. Why not the median of observed over the median of
expected, or the sum of observed over the sum of expected: on the demo data (whose physicians
have known dose factors) the first put two physicians of factor 1.0 and 1.05 at 1.12 and
1.22, because the median of a mix of skewed strata is not the median of their medians, and
the second put every physician at 1.2-1.5, because an expected value that is a median sits
below the mean of a skewed distribution; the median of per-record ratios gave 0.99 and 1.03,
and is centred on 1 for a typical physician by construction (half of each stratum lies above
its median). Medians, so one long case does not decide a ranking. Ultrasound-guided records
have no dose and are in no stratum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.analytics.bands import bmi_band_codes
from audit.analytics.grouping import group_codes
from audit.analytics.snapshot import Snapshot
from audit.filters import Filters

#: Fewest records with a dose a physician needs for an adjusted ratio to be shown.
MIN_RECORDS = 5


def radiation_free_share(snap: Snapshot, filters: Filters) -> pd.DataFrame:
    """Per procedure type: records, those done without radiation (ultrasound) and their
    share."""
    mask = filters.mask(snap)
    codes, names = group_codes(snap, "procedure")
    free = snap.fact("ultrasound_guidance")
    size = len(names)
    records = np.bincount(codes[mask], minlength=size)[:size]
    radiation_free = np.bincount(codes[mask & free], minlength=size)[:size]
    out = pd.DataFrame({"procedure": names, "records": records,
                        "radiation_free": radiation_free})
    out = out[out["records"] > 0].reset_index(drop=True)
    out["radiation_free_share"] = out["radiation_free"] / out["records"]
    return out


def stratum_codes(snap: Snapshot) -> np.ndarray:
    """Procedure type x levels treated x BMI band, as one integer per record."""
    r = snap.records
    bands, band_names = bmi_band_codes(r["bmi"].to_numpy())
    levels = np.minimum(r["n_levels"].to_numpy().astype(np.int64), 63)
    return (r["type_id"].to_numpy().astype(np.int64) * 64 + levels) * len(band_names) + bands


def expected_values(snap: Snapshot, mask: np.ndarray, quantity: str) -> np.ndarray:
    """Each record's expected value: its stratum's median over the masked records with the
    quantity (NaN outside them)."""
    values = snap.values(quantity)
    use = mask & ~np.isnan(values)
    strata = stratum_codes(snap)
    frame = pd.DataFrame({"stratum": strata[use], "value": values[use]})
    medians = frame.groupby("stratum")["value"].median()
    expected = np.full(len(values), np.nan)
    expected[use] = medians.reindex(strata[use]).to_numpy()
    return expected


def adjusted_scorecard(snap: Snapshot, filters: Filters,
                       quantity: str = "dap_gycm2") -> pd.DataFrame:
    """Per physician: records with the quantity, observed median, expected median (indirect
    standardisation, see the module docstring), the adjusted ratio (the median of observed /
    expected; 1.0: what peers give the same case mix), the crude ratio (their median over
    everyone's, no adjustment at all) and the share of their records with a known BMI."""
    mask = filters.mask(snap)
    values = snap.values(quantity)
    expected = expected_values(snap, mask, quantity)
    use = mask & ~np.isnan(values)
    r = snap.records
    frame = pd.DataFrame({"physician_id": r["physician_id"].to_numpy()[use],
                          "observed": values[use], "expected": expected[use],
                          "bmi_known": ~np.isnan(r["bmi"].to_numpy()[use])})
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["ratio"] = frame["observed"] / frame["expected"]
    overall = float(np.median(values[use])) if use.any() else np.nan
    grouped = frame.groupby("physician_id")
    out = pd.DataFrame({
        "records": grouped.size(),
        "observed_median": grouped["observed"].median(),
        "expected_median": grouped["expected"].median(),
        "bmi_known_share": grouped["bmi_known"].mean(),
        "adjusted_ratio": grouped["ratio"].median(),
    })
    with np.errstate(invalid="ignore", divide="ignore"):
        out["crude_ratio"] = out["observed_median"] / overall
    out.loc[out["records"] < MIN_RECORDS, ["adjusted_ratio", "crude_ratio"]] = np.nan
    out.insert(0, "physician", out.index.map(snap.physicians).astype(str))
    out["quantity"] = quantity
    return out.sort_values("physician", key=lambda s: s.str.lower()).reset_index(drop=True)
