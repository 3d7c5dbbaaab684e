"""Typesetting: Typst markup in, PDF bytes out; Altair charts in, SVG out (docs/design.md §14).

Why Typst (the `typst` wheel) and vl-convert: both are compilers shipped inside a Python wheel,
with no system library, browser or TeX installation behind them, so a fresh machine that can
`pip install` the project prints the same documents as the developer's. Typst typesets real
pages (tables that break across pages, running headers, page numbers) in tens of milliseconds;
vl-convert renders the dashboards' own Vega-Lite specs to vector graphics, so a chart in a PDF
is the chart the page draws, not a screenshot of it.

Text from people (names, notes, practice contact) never enters the markup as written: `literal`
turns any string into a Typst string literal, which Typst sets as text and never reads as
markup or code (tests/documents/test_typeset.py fuzzes it with Hypothesis).

Fonts: DejaVu (Debian's fonts-dejavu-core) where installed, else the fonts built into the
Typst wheel; FLUORO_AUDIT_FONTS names another folder. System fonts are ignored, so a page
looks the same on every machine that has the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audit.errors import DocumentFailed

#: A folder of fonts to use instead of DejaVu's.
FONTS_ENV = "FLUORO_AUDIT_FONTS"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
#: The body font, then the one built into the Typst wheel if DejaVu is not installed.
FONT_STACK = '("DejaVu Sans", "Libertinus Serif")'


def literal(text: object) -> str:
    """`text` as Typst markup that shows exactly these characters: a string literal
    (`#"..."`), closed by `;` so that what follows it ("." or "(") is never read as code.
    Backslash and quote are escaped; every character that is not printable (newlines, tabs,
    control and format characters) is written as a `\\u{...}` escape."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '#"' + "".join(out) + '";'


def font_paths() -> list[str]:
    chosen = os.environ.get(FONTS_ENV)
    if chosen:
        return [chosen]
    return [str(DEJAVU)] if DEJAVU.is_dir() else []


def preamble(title: str, footer: str) -> str:
    """Page setup every document shares: A4, the font, a footer with page numbers."""
    return (f'#set document(title: {literal(title)[1:-1]})\n'
            '#set page(paper: "a4", margin: (x: 2cm, top: 2cm, bottom: 2.2cm), numbering: "1",'
            ' footer: context [#set text(size: 7.5pt, fill: luma(90))\n'
            f'{literal(footer)} #h(1fr) Page #counter(page).display() of '
            '#counter(page).final().first()])\n'
            f'#set text(font: {FONT_STACK}, size: 10pt, lang: "en")\n'
            '#set par(justify: false)\n'
            '#set table(stroke: 0.4pt + luma(160), inset: 4pt)\n'
            '#show heading: set block(above: 1.2em, below: 0.6em)\n')


def table(headers: list[str], rows: list[list[object]], widths: str | None = None,
          align_right: set[int] | None = None) -> str:
    """A table whose header repeats on every page; every cell is literal text."""
    columns = widths or f"{len(headers)}"
    right = align_right or set()
    aligns = ", ".join("right" if i in right else "left" for i in range(len(headers)))
    head = ", ".join(f"[*{literal(h)}*]" for h in headers)
    body = ",\n".join(", ".join(f"[{literal(c)}]" for c in row) for row in rows)
    return (f"#table(columns: {columns}, align: ({aligns},), "
            f"table.header({head}),\n{body}{',' if rows else ''})\n")


def compile_pdf(source: str, files: Mapping[str, bytes | str] | None = None) -> bytes:
    """The PDF of `source` (Typst markup); `files` are images it names (e.g. "chart1.svg"),
    placed beside it in a private temporary folder that is removed afterwards."""
    import typst

    with tempfile.TemporaryDirectory(prefix="fluoro-doc-") as folder:
        root = Path(folder)
        for name, data in (files or {}).items():
            (root / name).write_bytes(data.encode() if isinstance(data, str) else data)
        (root / "main.typ").write_text(source, encoding="utf-8")
        try:
            return bytes(typst.compile(str(root / "main.typ"), root=str(root),
                                       font_paths=font_paths(), ignore_system_fonts=True))
        except RuntimeError as exc:
            raise DocumentFailed(f"the document could not be typeset: {exc}") from None


#: The smallest chart: rendering it starts vl-convert's JavaScript engine.
_WARM_UP_SPEC = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                 "data": {"values": [{"x": 0}]}, "mark": "point",
                 "encoding": {"x": {"field": "x", "type": "quantitative"}}}


def warm_up_charts() -> threading.Thread:
    """Start vl-convert's engine in the background and return its thread. The first chart a
    process renders waits about a second for that engine to start (later ones take tens of
    milliseconds); a document that first spends seconds gathering its figures (the committee
    report reading a million records) starts it here, and the engine starts meanwhile on the
    other core (vl-convert releases the GIL while it works)."""

    def render() -> None:
        # only a head start: the real chart reports its own errors
        with contextlib.suppress(Exception):
            chart_svg(_WARM_UP_SPEC)

    thread = threading.Thread(target=render, name="chart-engine-warm-up", daemon=True)
    thread.start()
    return thread


def chart_svg(chart: Any) -> str:
    """An Altair chart (or a Vega-Lite spec dict) as SVG, for a PDF."""
    import vl_convert

    spec = chart if isinstance(chart, dict) else chart.to_dict()
    return str(vl_convert.vegalite_to_svg(spec))


def write_atomically(path: Path | str, data: bytes) -> str:
    """Write `data` to `path` through a temporary name beside it and a rename, so nobody ever
    opens half a file; returns its SHA-256 (what the audit event records)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return sha256(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
