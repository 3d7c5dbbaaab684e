"""Shared by the document tests: PDF text, first page as PNG, what a letter must not hold."""

from __future__ import annotations

import os
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


def first_page_png(pdf: Path, out: Path, dpi: int = 70) -> Path:
    """Page 1 as PNG with Debian's pdftoppm (poppler-utils)."""
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm (Debian poppler-utils) is needed: .ci/run installs it"
    prefix = out.with_suffix("")
    subprocess.run([tool, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(prefix)], check=True)
    return prefix.with_suffix(".png")


def keep_screenshot(png: Path, name: str) -> None:
    """With FLUORO_AUDIT_SCREENSHOTS set (`make screenshots`), keep the page as the README's
    picture of the document: docs/screenshots/NAME.png."""
    folder = os.environ.get("FLUORO_AUDIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / f"{name}.png")


def assert_not_blank(png: Path) -> None:
    """Ink on the page: the grey levels vary, and enough pixels are dark."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert pixels.var() > 50, f"{png} looks blank (variance {pixels.var():.1f})"
    assert (pixels < 128).mean() > 0.005


#: What must never appear in a patient's letter: field names, Python's None, number formats.
SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")
