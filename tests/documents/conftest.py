"""Shared by the document tests: a patient with known procedures, PDF text and rendering."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from audit.auth import Actor
from audit.log.service import ProcedureLog
from tests.conftest import valid_record

MRN = "MRN0001"


@pytest.fixture
def patient(service: ProcedureLog, admin: Actor) -> str:
    """MRN0001 with three procedures: a lumbar TFESI with contrast, a cervical one where
    contrast was contraindicated (allergy), and an ILESI; MRN0002 with one (not in the
    history)."""
    service.log_many([
        valid_record(),
        valid_record(performed_at="2026-04-02T10:00:00Z", procedure_code="TFESI",
                     levels=["C6"], laterality="right", contrast_agent=None,
                     contrast_volume_ml=None, contrast_confirmation="contraindicated",
                     contrast_exception_reason="allergy", confirmation_views=None,
                     realtime_contrast=None, fluoro_time_s=41, dap_value=0.4),
        valid_record(performed_at="2026-05-05T10:00:00Z", procedure_code="ILESI",
                     levels=["L4-L5"], laterality="midline", fluoro_time_s=20, dap_value=0.5),
        valid_record(patient_id="MRN0002", performed_at="2026-05-06T10:00:00Z"),
    ], admin, create_missing=True)
    return MRN


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
