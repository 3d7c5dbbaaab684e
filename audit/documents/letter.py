"""The letter to a patient about the radiation of their procedures (issue 14).

It answers what patients ask: what was done, how much radiation, whether to worry, what about
the contrast dye, where the images are and whom to ask. In words: no field names, codes or raw
number formats (audit.documents.words; tests/documents/test_letter.py scans the PDF's text).
The dose is the estimated effective dose with its equivalent in days of natural background
radiation, and the one-line caution NCRP Report 184 asks for (audit.dosimetry,
docs/reference.md §8).

Made only by Permission.PATIENT_HISTORY; the read, and the event holding the PDF's SHA-256,
are one transaction; the file is written through a temporary name and removed again if the
transaction fails.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from audit.auth import Actor
from audit.documents import typeset, words
from audit.documents.events import PATIENT_LETTER, record_document
from audit.documents.patient_history import PatientHistory, period_text, read_history
from audit.dosimetry import BACKGROUND_CAUTION
from audit.settings import Settings, load_settings
from audit.storage.engine import write_session
from audit.vocab import Guidance

lit = typeset.literal


def write_letter(engine: Engine, actor: Actor, mrn: str, out: Path, *,
                 first: date | None = None, last: date | None = None) -> dict[str, Any]:
    """Write the letter PDF to `out`; returns what was written (file, bytes, SHA-256, audit
    event id). The file is written inside the audit event's transaction and removed again if
    that transaction fails."""
    def deliver(pdf: bytes) -> None:
        try:
            typeset.write_atomically(out, pdf)
        except BaseException:
            Path(out).unlink(missing_ok=True)
            raise

    try:
        _, info = letter_document(engine, actor, mrn, first=first, last=last, deliver=deliver)
    except BaseException:
        Path(out).unlink(missing_ok=True)
        raise
    return {"file": str(out), **info}


def letter_document(engine: Engine, actor: Actor, mrn: str, *, first: date | None = None,
                    last: date | None = None,
                    deliver: Callable[[bytes], None] | None = None,
                    ) -> tuple[bytes, dict[str, Any]]:
    """The letter's PDF and what the audit event recorded; the read, the event (with the PDF's
    SHA-256) and `deliver(pdf)` (e.g. writing the file) are one transaction."""
    with write_session(engine) as session:
        history = read_history(session, actor, mrn, first=first, last=last)
        pdf = letter_pdf(history, load_settings(session))
        digest = typeset.sha256(pdf)
        event_id = record_document(session, actor, PATIENT_LETTER, history.pseudonym,
                                   access="pdf", sha256=digest,
                                   procedures=len(history.procedures),
                                   period=period_text(first, last))
        if deliver is not None:
            deliver(pdf)
    return pdf, {"bytes": len(pdf), "sha256": digest, "audit_event_id": event_id,
                 "patient_ref": history.pseudonym, "procedures": len(history.procedures)}


#: Guidance without radiation: its procedure is worded without an X-ray time or dose.
RADIATION_FREE = Guidance.ULTRASOUND.value


def letter_pdf(history: PatientHistory, settings: Settings) -> bytes:
    return typeset.compile_pdf(letter_source(history, settings))


def _contrast(row: Any) -> str:
    if not words.missing(row.contrast_agent) and row.contrast_agent:
        amount = ("" if words.missing(row.contrast_volume_ml)
                  else f", {words.number(row.contrast_volume_ml)} millilitres")
        return f"Contrast dye used: {row.contrast_agent}{amount}."
    reason = row.contrast_exception_reason
    if row.contrast_confirmation == "contraindicated" or not words.missing(reason):
        why = words.EXCEPTION_WORDS.get(str(reason), "a medical reason recorded by your doctor")
        return f"Contrast dye was not used because of {why}."
    if row.contrast_confirmation == "not_required":
        return "No contrast dye was needed for this procedure."
    return "No contrast dye was recorded for this procedure."


def letter_source(history: PatientHistory, settings: Settings) -> str:
    """The letter as Typst markup; every piece of text from the database is a literal."""
    practice = settings.practice_name.strip() or "Your pain management practice"
    contact = settings.practice_contact.strip()
    parts = [typeset.preamble("Your radiation dose", practice),
             f"#text(size: 15pt, weight: \"bold\")[{lit(practice)}]\n\n"]
    if contact:
        parts.append(f"#text(size: 9pt)[{lit(contact)}]\n\n")
    parts.append(f"#v(0.5em)\n{lit(words.day(history.as_of))}\n\n"
                 f"Medical record number: {lit(history.mrn)}\n\n"
                 "= About the X-rays used during your procedures\n\n"
                 "Dear patient,\n\nYour doctor used a low-dose X-ray camera (fluoroscopy) to "
                 "guide the needle safely during your procedures. This letter lists them, "
                 "estimates the radiation you received and compares it with the natural "
                 "radiation everyone receives from the ground, the air and space.\n\n")
    rows = list(history.procedures.itertuples())
    if not rows:
        parts.append("We have no procedure with X-ray guidance on record for you in this "
                     "period.\n\n")
    for row in rows:
        what = words.procedure_words(row.procedure, row.procedure_name, row.region, row.levels,
                                     row.laterality)
        dose = ("The X-ray machine's dose reading was not recorded, so no estimate can be made."
                if words.missing(row.effective_dose_msv) else
                f"Estimated radiation dose: {words.number(row.effective_dose_msv, 2)} "
                f"millisieverts, the same as "
                f"{words.background_words(row.background_days)} of natural background "
                "radiation.")
        xray = (f"X-ray time: {words.number(row.fluoro_time_s, 0)} seconds. {dose}"
                if row.guidance != RADIATION_FREE else
                "No X-rays were used: the needle was guided by ultrasound, so this procedure "
                "gave you no radiation dose.")
        parts.append(f"== {lit(words.day(row.performed_at))}\n"
                     f"{lit(what[0].upper() + what[1:] + '.')}\n\n"
                     f"{lit(xray)}\n\n{lit(_contrast(row))}\n\n")
    if len(rows) > 1:
        total = float(history.procedures["effective_dose_msv"].sum())
        days = total * 365 / history.annual_background_msv
        parts.append(f"*Together:* an estimated {lit(words.number(total, 2))} millisieverts, "
                     f"{lit(words.background_words(days))} of natural background "
                     "radiation.\n\n")
    parts.append(f"#block(inset: 6pt, stroke: 0.5pt + luma(150))[{lit(BACKGROUND_CAUTION)}]\n\n"
                 "Natural background radiation in this country averages "
                 f"{lit(words.number(history.annual_background_msv, 1))} millisieverts a year. "
                 "The doses above are estimated from the X-ray machine's reading and "
                 "the part of the body imaged; they are not measured in your body.\n\n"
                 "= Your images\n\n")
    images = settings.images_held_at.strip()
    parts.append(lit(images) if images else
                 "Your images are kept in your medical record at the practice that performed "
                 "your procedure. You may ask the practice for a copy at any time.")
    parts.append("\n\n= Questions\n\nIf you have questions about this letter, your procedures "
                 "or contrast dye (for example if you have kidney disease or an allergy), "
                 "please contact us")
    parts.append(f": {lit(contact)}.\n" if contact else ".\n")
    return "".join(parts)
