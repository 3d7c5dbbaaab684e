"""Which warnings a record gets before it is written (docs/design.md §4): a possible duplicate
(audit.log.duplicates), the plausibility warnings validation found, why it will count as
non-compliant (audit.log.compliance_check) and, for records logged one by one (the form,
`fluoro-audit log`, an amend), the practice rules in force that the patient's history breaks
(audit.rules: coverage limits and the 2015 safeguards).

Why CSV imports are not checked against the practice rules here: a file is history already
done, often a backlog from another system; blocking it on a coverage limit would only keep it
out of the log. Its records are checked the same way in `report rules` and on the Coverage and
safeguards page.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from audit.errors import FieldError
from audit.log.compliance_check import compliance_warnings
from audit.log.duplicates import Duplicates
from audit.log.validation import Validated
from audit.rules import evaluate, history
from audit.rules.store import load_packs

#: The field a practice-rule warning names (the form lists it under "Practice rules").
RULES_FIELD = "practice_rules"


def rule_warnings(session: Session, checked: Validated,
                  exclude_id: int | None = None) -> list[FieldError]:
    """The practice-rule exceptions of a record about to be written: the packs (one small
    query) and, only if one is on, the patient's history (one indexed query)."""
    packs = load_packs(session)
    at = checked.values["performed_at"]
    if not any(p.applies(at.date()) for p in packs.values()):
        return []
    case = history.candidate(checked.values, checked.entry.code, checked.levels, exclude_id)
    earlier = history.for_patient(session, checked.names["patient_id"], at, exclude_id)
    return [FieldError(RULES_FIELD, f.message or "")
            for f in evaluate.warnings(case, earlier, packs)]


def entry_warnings(session: Session, checked: Validated, dups: Duplicates,
                   exclude_id: int | None = None, *, rules: bool = True) -> list[FieldError]:
    """Every warning of a record about to be written; `rules` False for CSV imports."""
    mrn, at = checked.names["patient_id"], checked.values["performed_at"]
    dups.ensure(session, mrn, checked.entry.id, at)
    found = [*dups.warnings(mrn, checked.entry.id, checked.entry.code, at, exclude_id),
             *checked.warnings, *compliance_warnings(checked.values, checked.entry)]
    if rules:
        found += rule_warnings(session, checked, exclude_id)
    return found
