"""Small pieces the pages share: field errors shown next to their field, labels for values,
and `plain()`, which every piece of user-supplied text passes through before a Markdown-rendering
call (st.markdown, st.error, widget labels, st.table cells, ...).

Forms here submit through a callback (on_click of the submit button): the callback calls the
library and keeps the outcome in st.session_state, and the script that runs right after draws
each error under the field it names. No rules live here; the messages come from audit/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import streamlit as st

from audit.errors import FieldError

#: Characters that start a Markdown (or Streamlit directive) construct wherever they appear:
#: links and images need `[`, autolinks `<`, emphasis `*` `~`, code `` ` ``, LaTeX `$`,
#: tables `|`, headings `#`, entities `&`, colour directives `[`/`{`.
_INLINE = re.compile(r"([\\`*{}\[\]<>#|~$&])")
#: `_` emphasises only at a word's edge: runs inside a word (`by_level`) stay as typed.
_UNDERSCORES = re.compile(r"(?<![^\W_])_+|_+(?![^\W_])")
#: GitHub's bare-URL and e-mail autolinks (`https://…`, `www.…`, `a@b.c`) are found in the text
#: after escapes are resolved, so a backslash cannot stop them: an invisible WORD JOINER
#: (U+2060) inside `://`, `www.` and after `@` does, and shows nothing.
_BARE_URL = re.compile(r"(?i)(:(?=//)|\bwww(?=\.)|@)")
_JOINER = "\u2060"
#: Block markers that only count at the start of a line (lists, quotes, rules, headings).
_LINE_START = re.compile(r"^([ \t]*(?:\d+)?)([-+=.)])", re.MULTILINE)


def plain(text: object) -> str:
    """`text` escaped so that Streamlit's Markdown shows it literally.

    Names, notes, reasons and messages quoting them are typed by users; rendered as Markdown,
    `[x](https://…)` becomes a live link and `![b](https://…)` an image the browser fetches the
    moment the page opens. Backslash escapes keep every character visible as typed. Only the
    characters that can start a construct are escaped, so ordinary text (and the tests reading
    it) stays as it was. None shows as an empty string.
    """
    if text is None:
        return ""
    out = _INLINE.sub(r"\\\1", str(text))
    out = _UNDERSCORES.sub(lambda m: "\\_" * len(m.group()), out)
    out = _BARE_URL.sub(lambda m: m.group(1) + _JOINER, out)
    return _LINE_START.sub(r"\1\\\2", out)


class FieldErrors:
    """The errors (or warnings) of one form, kept across the rerun that shows them."""

    def __init__(self, key: str):
        self.key = key

    @property
    def items(self) -> list[tuple[str, str]]:
        return list(st.session_state.get(self.key, []))

    def set(self, errors: Iterable[FieldError]) -> None:
        st.session_state[self.key] = [(e.field, e.message) for e in errors]

    def clear(self) -> None:
        st.session_state.pop(self.key, None)

    def __bool__(self) -> bool:
        return bool(self.items)

    def fields(self) -> set[str]:
        return {field for field, _ in self.items}

    def show(self, *fields: str, warning: bool = False) -> None:
        """Draw the messages of these fields here, right under their widget."""
        for field, message in self.items:
            if field in fields:
                if warning:
                    st.warning(plain(message), icon=":material/warning:")
                else:
                    st.error(plain(message), icon=":material/error:")

    def show_others(self, shown: Iterable[str], warning: bool = False) -> None:
        """Messages about fields that have no widget of their own, with the field named."""
        known = set(shown)
        for field, message in self.items:
            if field not in known:
                text = plain(f"{field}: {message}")
                if warning:
                    st.warning(text, icon=":material/warning:")
                else:
                    st.error(text, icon=":material/error:")


def yes_no_blank(value: str | None) -> str:
    """Labels of the three-state pickers."""
    return {"yes": "Yes", "no": "No"}.get(value or "", "—")


#: How the record's fields are named on screen (the dictionary names stay in exports and CLI).
FIELD_LABELS: dict[str, str] = {
    "record_id": "Record", "status": "Status", "version": "Version",
    "performed_at": "Performed at", "site": "Site", "room": "Room", "physician": "Physician",
    "technologist": "Technologist", "patient_id": "Patient ID (MRN)",
    "patient_ref": "Patient reference", "accession_number": "Accession number",
    "patient_sex": "Sex", "patient_weight_kg": "Weight (kg)",
    "pregnancy_status": "Pregnancy status", "procedure_code": "Procedure",
    "region": "Region", "levels": "Levels", "laterality": "Laterality",
    "guidance": "Guidance", "fluoro_time_s": "Fluoro time (s)",
    "dap_gycm2": "DAP (Gy·cm²)", "dap_value": "DAP as displayed", "dap_unit": "DAP unit",
    "dap_missing_reason": "Why no DAP", "air_kerma_mgy": "Ka,r (mGy)",
    "saved_images": "Saved images", "dsa_runs": "DSA runs", "pulsed_fluoro": "Pulsed fluoro",
    "pulse_rate_pps": "Pulse rate (pulses/s)", "low_dose_mode": "Low-dose mode",
    "contrast_agent": "Contrast agent", "contrast_volume_ml": "Contrast volume (mL)",
    "contrast_confirmation": "Contrast confirmation",
    "contrast_exception_reason": "Contraindication", "contrast_exception_detail":
    "Contraindication detail", "confirmation_views": "Views saved",
    "realtime_contrast": "Real-time contrast", "vascular_uptake": "Vascular uptake",
    "needle_repositioned": "Needle repositioned", "injectate": "Injectate", "notes": "Notes",
    "dose_source": "Dose source", "effective_dose_msv": "Effective dose (mSv)",
    "background_days": "Days of background", "warnings": "Confirmed warnings",
    "void_reason": "Void reason", "created_at": "Created", "created_by": "Created by",
    "updated_at": "Last changed", "updated_by": "Changed by",
}


def label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))
