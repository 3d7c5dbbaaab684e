"""Entry-time compliance: say before saving that a record will count as non-compliant, and why.

Why: a TFESI with one confirmation view saved without a word and only showed up weeks later as
non-compliant (issue 11), when nobody remembered the case. Now the form and `fluoro-audit log`
warn (a warning to confirm, like the plausibility warnings) while the technologist still has
the images in front of them.

The verdict is not decided here: :func:`compliance_warnings` feeds the record's values to
audit.contrast_rule.contrast_compliance, the function the compliance analytics count with, and
only words the reasons that function gives. A contraindication with a documented reason is
excepted by that rule, so it is not warned; a record whose type does not require contrast is
not eligible, so it is not warned either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.catalog import CatalogEntry
from audit.contrast_rule import contrast_compliance, reasons
from audit.errors import FieldError
from audit.vocab import RADIATION_FREE_GUIDANCE, ContrastConfirmation, ContrastPolicy

#: What every compliance warning ends with: what the warning is about.
CONSEQUENCE = "it will count as non-compliant in contrast-confirmation compliance"


def rule_inputs(values: Mapping[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    """The rule's inputs for one validated record (canonical Procedure values), as the
    analysis frame gives them for a stored record (audit.analytics._packing): a missing
    count is 0, an unanswered real-time question is not real-time."""
    status = values.get("contrast_confirmation")
    views = [v for v in str(values.get("confirmation_views") or "").split(";") if v]
    return {
        "policy_required": entry.contrast_policy is ContrastPolicy.REQUIRED,
        "confirmed": status == ContrastConfirmation.CONFIRMED.value,
        "contraindicated": status == ContrastConfirmation.CONTRAINDICATED.value,
        "exception_reason": values.get("contrast_exception_reason") is not None,
        "saved_images": int(values.get("saved_images") or 0),
        "views": len(views),
        "min_views": entry.min_views,
        "realtime_required": bool(entry.realtime_contrast_required),
        "realtime_contrast": values.get("realtime_contrast") is True,
        "radiation_free": values.get("guidance") in {g.value for g in RADIATION_FREE_GUIDANCE},
    }


def verdict(values: Mapping[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    """audit.contrast_rule.contrast_compliance of one record."""
    return contrast_compliance(**rule_inputs(values, entry))


def compliance_warnings(values: Mapping[str, Any], entry: CatalogEntry) -> list[FieldError]:
    """One warning per reason the record will count as non-compliant; none when it will not
    (compliant, excepted, or its type does not require contrast)."""
    parts = verdict(values, entry)
    if not parts["non_compliant"]:
        return []
    inputs = rule_inputs(values, entry)
    code = entry.code
    status = values.get("contrast_confirmation")
    worded = {
        "contraindicated_without_reason": (
            "contrast_exception_reason", "contraindicated without a documented reason; give "
            "the reason"),
        "not_confirmed": (
            "contrast_confirmation", f"contrast confirmation {status!r} for a procedure whose "
            f"policy is required ({code}); allowed without this warning: confirmed, or "
            "contraindicated with a reason"),
        "no_image": (
            "saved_images", f"no saved image; {code} needs at least 1 saved image of the "
            "contrast confirmation"),
        "too_few_views": (
            "confirmation_views", f"{code} needs {inputs['min_views']} confirmation views; "
            f"{inputs['views']} given"),
        "no_realtime": (
            "realtime_contrast", f"real-time contrast required for {code} (contrast injected "
            "under live fluoroscopy or DSA)"),
    }
    return [FieldError(worded[name][0], f"{worded[name][1]}: {CONSEQUENCE}")
            for name, applies in reasons(parts).items() if applies]


__all__ = ["CONSEQUENCE", "compliance_warnings", "rule_inputs", "verdict"]
