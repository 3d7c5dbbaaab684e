"""Typst typesetting: any text placed in a document is shown literally (Hypothesis), and a
document compiles with the fonts at hand."""

from __future__ import annotations

import json

import typst
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.documents.typeset import compile_pdf, font_paths, literal, preamble, table
from tests.documents.conftest import pdf_text


def shown(text: str) -> str:
    """What Typst makes of literal(text) in markup: the text content of that piece."""
    source = (f"#let v = [{literal(text)}]\n"
              '#metadata(if v.has("text") { v.text } else { repr(v) }) <x>\n')
    return json.loads(typst.query(source.encode(), "<x>", field="value", one=True,
                                  ignore_system_fonts=True))


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_any_string_is_shown_as_literal_text(text: str) -> None:
    assert shown(text) == text


def test_markup_and_code_in_text_stay_text() -> None:
    for text in ['#set page(width: 1pt)', '*bold* _it_ $x$ `raw`', '"quoted" \\ back',
                 '= heading', '<label> @ref', '#"x";.len()', "line\nbreak\ttab\x00"]:
        assert shown(text) == text


def test_a_document_compiles_with_its_table_and_text() -> None:
    source = preamble("Test", "footer") + table(["Name", "Value"], [["a_b #x", "1.5"]])
    text = pdf_text(compile_pdf(source))
    assert "a_b #x" in text and "1.5" in text and "Page 1 of 1" in text


def test_fonts_are_debian_dejavu_when_installed() -> None:
    paths = font_paths()
    assert paths == [] or paths[0].endswith("dejavu")
