"""Shared by the document tests: PDF text, first page as PNG, what a letter must not hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from pypdf import PdfReader


def pdf_text(path_or_bytes: Path | bytes) -> str:
    import io

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return "\n".join(page.extract_text() for page in PdfReader(source).pages)


def first_page_png(pdf: Path, out: Path, dpi: int = 60) -> Path:
    """Page 1 as PNG with Debian's pdftoppm (poppler-utils)."""
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm (Debian poppler-utils) is needed: .ci/run installs it"
    prefix = out.with_suffix("")
    subprocess.run([tool, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(prefix)], check=True)
    return prefix.with_suffix(".png")


def assert_not_blank(png: Path) -> None:
    """Ink on the page: the grey levels vary, and enough pixels are dark."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert pixels.var() > 50, f"{png} looks blank (variance {pixels.var():.1f})"
    assert (pixels < 128).mean() > 0.005


#: What must never appear in a patient's letter: field names, Python's None, number formats.
SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")
