"""Documents people print (issue 14): a patient's dose history and letter, the radiation safety
committee's report and a surveyor's packet, typeset to PDF (audit.documents.typeset).

Modules: typeset (Typst and vl-convert, the literal-text escape), words (numbers and procedures
in words), charts (the Altair specs the documents and the pages share), events (their audit
events), acting (`--as USER`), patient_history, letter, committee and committee_figures (the
report and its figures), surveyor (the signed export packet).

The public names below load lazily (audit/_lazy.py): `import audit.documents` loads neither
pandas nor the typesetter. `patient_dose_history` is patient_history.patient_history (the
short name is its module's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit._lazy import lazy_names

if TYPE_CHECKING:
    from audit.documents.acting import account_actor as account_actor
    from audit.documents.charts import DOSE_OVER_TIME_CAPTION as DOSE_OVER_TIME_CAPTION
    from audit.documents.charts import dose_over_time as dose_over_time
    from audit.documents.charts import p_chart_spec as p_chart_spec
    from audit.documents.committee import committee_document as committee_document
    from audit.documents.committee import committee_pdf as committee_pdf
    from audit.documents.committee import write_committee_report as write_committee_report
    from audit.documents.committee_figures import STEPS as COMMITTEE_STEPS
    from audit.documents.letter import letter_document as letter_document
    from audit.documents.letter import letter_pdf as letter_pdf
    from audit.documents.letter import write_letter as write_letter
    from audit.documents.patient_history import PatientHistory as PatientHistory
    from audit.documents.patient_history import patient_history as patient_dose_history
    from audit.documents.patient_history import render_history as render_history
    from audit.documents.surveyor import export_surveyor_packet as export_surveyor_packet
    from audit.documents.typeset import literal as typst_literal

__all__ = [
    "COMMITTEE_STEPS",
    "DOSE_OVER_TIME_CAPTION",
    "PatientHistory",
    "account_actor",
    "committee_document",
    "committee_pdf",
    "dose_over_time",
    "export_surveyor_packet",
    "letter_document",
    "letter_pdf",
    "p_chart_spec",
    "patient_dose_history",
    "render_history",
    "typst_literal",
    "write_committee_report",
    "write_letter",
]

#: Public name -> where it lives ("module:attribute" where the public name differs).
_PUBLIC = {
    "account_actor": "audit.documents.acting",
    "dose_over_time": "audit.documents.charts",
    "DOSE_OVER_TIME_CAPTION": "audit.documents.charts",
    "p_chart_spec": "audit.documents.charts",
    "committee_pdf": "audit.documents.committee",
    "committee_document": "audit.documents.committee",
    "COMMITTEE_STEPS": "audit.documents.committee_figures:STEPS",
    "write_committee_report": "audit.documents.committee",
    "letter_pdf": "audit.documents.letter",
    "letter_document": "audit.documents.letter",
    "write_letter": "audit.documents.letter",
    "PatientHistory": "audit.documents.patient_history",
    "patient_dose_history": "audit.documents.patient_history:patient_history",
    "render_history": "audit.documents.patient_history",
    "export_surveyor_packet": "audit.documents.surveyor",
    "typst_literal": "audit.documents.typeset:literal",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
