"""Body-mass-index bands and C-arm operators as groupings of the analysis frame (issue 15).

Apart from audit.analytics.case_mix so that audit.analytics.grouping can offer them as
groupings (`--by bmi_band|operator`) without importing the figures built on top of it.
"""

from __future__ import annotations

import numpy as np

from audit.vocab import BMI_BAND_LOWER, BmiBand, CarmOperator


def bmi_band_codes(bmi: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """WHO band number per record (BmiBand order; the last, unknown, where BMI is missing)."""
    codes = np.full(len(bmi), len(BMI_BAND_LOWER), dtype=np.int64)
    present = ~np.isnan(bmi)
    codes[present] = np.searchsorted(np.asarray(BMI_BAND_LOWER[1:]), bmi[present],
                                     side="right")
    return codes, BmiBand.values()


def operator_codes(operator: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """C-arm operator per record; "not recorded" last (the frame stores 0 for it)."""
    names = [*CarmOperator.values(), "not recorded"]
    op = operator.astype(np.int64)
    return np.where(op == 0, len(names) - 1, op - 1), names
