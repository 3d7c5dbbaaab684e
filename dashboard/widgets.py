"""Small pieces the pages share: field errors shown next to their field, labels for values.

Forms here submit through a callback (on_click of the submit button): the callback calls the
library and keeps the outcome in st.session_state, and the script that runs right after draws
each error under the field it names. No rules live here; the messages come from audit/.
"""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from audit.errors import FieldError


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
                    st.warning(message, icon=":material/warning:")
                else:
                    st.error(message, icon=":material/error:")

    def show_others(self, shown: Iterable[str], warning: bool = False) -> None:
        """Messages about fields that have no widget of their own, with the field named."""
        known = set(shown)
        for field, message in self.items:
            if field not in known:
                text = f"{field}: {message}"
                if warning:
                    st.warning(text, icon=":material/warning:")
                else:
                    st.error(text, icon=":material/error:")


def yes_no_blank(value: str | None) -> str:
    """Labels of the three-state pickers."""
    return {"yes": "Yes", "no": "No"}.get(value or "", "—")
