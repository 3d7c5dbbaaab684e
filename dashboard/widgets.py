"""Small pieces the pages share: field errors shown next to their field, and `plain()`, which
every piece of user-supplied text passes through before a Markdown-rendering call (st.markdown,
st.error, widget labels, st.table cells, ...).

Forms here submit through a callback (on_click of the submit button): the callback calls the
library and keeps the outcome in st.session_state, and the script that runs right after draws
each error under the field it names. No rules live here; the messages come from audit/, and a
form that passes `wording` (dashboard.wording.say_with) shows them in its own words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import streamlit as st

from audit.errors import FieldError
from dashboard.wording import named as named_message

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
    """The errors (or warnings) of one form, kept across the rerun that shows them.

    `wording(field, message)` is how the form words them (the field as it labels it, what to
    do); without it a message is shown as the library wrote it, and one about a field with no
    widget of its own is prefixed with the field's label."""

    def __init__(self, key: str, wording: Callable[[str, str], str] | None = None):
        self.key = key
        self.wording = wording

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

    def text(self, field: str, message: str, named: bool = False) -> str:
        """One message as shown; `named`: prefixed with its field when it is not worded."""
        if self.wording is not None:
            return self.wording(field, message)
        return named_message(field, message) if named else message

    def _draw(self, text: str, warning: bool) -> None:
        if warning:
            st.warning(plain(text), icon=":material/warning:")
        else:
            st.error(plain(text), icon=":material/error:")

    def show(self, *fields: str, warning: bool = False) -> None:
        """Draw the messages of these fields here, right under their widget."""
        for field, message in self.items:
            if field in fields:
                self._draw(self.text(field, message), warning)

    def show_others(self, shown: Iterable[str], warning: bool = False) -> None:
        """Messages about fields that have no widget of their own, with the field named."""
        known = set(shown)
        for field, message in self.items:
            if field not in known:
                self._draw(self.text(field, message, named=True), warning)
