"""Contrast-confirmation compliance of a record: the one rule the analytics count and the log
warns with.

Why one function for both: a TFESI saved with one confirmation view used to save without a word
and show up weeks later as non-compliant (issue 11). The entry form and `fluoro-audit log` now
say so before saving, and they must say exactly what the compliance figures will count, so both
call :func:`contrast_compliance`: the analytics with numpy arrays (one value per record of the
frame, audit.analytics.compliance), the log with plain Python values for the one record being
saved (audit.log.compliance_check). The rule (docs/design.md §6):

- eligible: the record's catalog contrast policy is "required" (voided records never reach the
  rule: the frame holds final records only, and a voided record is not being saved), and the
  record is not radiation-free (ultrasound-guided) unless its catalog requires real-time
  contrast (TFESI): under ultrasound the injectate's spread is watched directly, so
  fluoroscopic contrast confirmation does not apply, but TFESI's safeguard against an
  intravascular injection is real-time contrast, which ultrasound does not replace
  (docs/design.md, issue 15);
- compliant: eligible AND contrast confirmed AND at least one saved image AND at least the
  catalog's minimum number of views AND real-time contrast where the catalog requires it;
- excepted: eligible AND contraindicated AND a documented reason;
- non_compliant: eligible AND neither compliant nor excepted.

Booleans are combined with ``&``, ``|`` and :func:`_not` (``x ^ True``), which mean the same on
numpy bool arrays and on Python bools, so the very same lines decide both cases; ``~`` would
turn a Python True into -2.
"""

from __future__ import annotations

from typing import Any, TypeVar

B = TypeVar("B")  # a Python bool, or a numpy bool array

#: Why a non-compliant record is non-compliant, in the order reasons are listed; the texts are
#: the analytics' short forms (the records behind a compliance figure). The log words each
#: reason for the record being saved (audit.log.compliance_check).
REASONS: dict[str, str] = {
    "contraindicated_without_reason": "contraindicated without a reason",
    "not_confirmed": "contrast not confirmed",
    "no_image": "no saved image",
    "too_few_views": "too few views",
    "no_realtime": "no real-time contrast",
}


def _not(value: B) -> B:
    """Logical not of a Python bool or a numpy bool array (see the module docstring)."""
    return value ^ True  # type: ignore[operator,no-any-return]


def contrast_compliance(*, policy_required: Any, confirmed: Any, contraindicated: Any,
                        exception_reason: Any, saved_images: Any, views: Any, min_views: Any,
                        realtime_required: Any, realtime_contrast: Any,
                        radiation_free: Any = False) -> dict[str, Any]:
    """The compliance rule, for one record (Python values) or many (numpy arrays of equal
    length; booleans as bool).

    Returns the verdicts (eligible, compliant, excepted, non_compliant) and the parts a
    non-compliant record is explained by (confirmed, contraindicated, images, views, realtime,
    min_views); :func:`reasons` turns the parts into reasons.
    """
    eligible = policy_required & (_not(radiation_free) | realtime_required)
    images = saved_images >= 1
    enough_views = views >= min_views
    realtime = _not(realtime_required) | realtime_contrast
    compliant = eligible & confirmed & images & enough_views & realtime
    excepted = eligible & contraindicated & exception_reason
    return {"eligible": eligible, "compliant": compliant, "excepted": excepted,
            "non_compliant": eligible & _not(compliant) & _not(excepted),
            "confirmed": confirmed, "contraindicated": contraindicated, "images": images,
            "views": enough_views, "realtime": realtime, "min_views": min_views}


def reasons(parts: dict[str, Any]) -> dict[str, Any]:
    """Each reason of :data:`REASONS`, as a condition over :func:`contrast_compliance`'s parts
    (meaningful for non-compliant records). Views and real-time contrast are only reasons when
    contrast was confirmed: without contrast there are no views to count."""
    contraindicated = parts["contraindicated"]
    confirmed = parts["confirmed"]
    return {
        "contraindicated_without_reason": contraindicated,
        "not_confirmed": _not(confirmed) & _not(contraindicated),
        "no_image": _not(parts["images"]),
        "too_few_views": confirmed & _not(parts["views"]),
        "no_realtime": confirmed & _not(parts["realtime"]),
    }


__all__ = ["REASONS", "contrast_compliance", "reasons"]
