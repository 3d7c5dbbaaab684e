"""From bytes to a pydicom Dataset, with the byte-level checks and scans pydicom does not do.

Why this is separate from the parse: it is the part that deals with hostile or broken input
(huge files, text files, files cut in half) and with raw element bytes, where struct offsets and
VR rules matter and the dose report's meaning does not. Everything here either returns a
Dataset, returns plain values, or raises RejectedReport.
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, Final

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from audit.dose_reports.report import RejectedReport

# RDSRs are kilobytes to a few megabytes; a huge input is an image or an attack, not a report.
MAX_INPUT_BYTES: Final = 64 * 1024 * 1024
#: (0040,A043) Concept Name Code Sequence, read raw by :func:`scan_code_item`.
CONCEPT_NAME_CODE_SEQUENCE: Final = 0x0040A043
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
_CODE_VALUE: Final = 0x00080100
_CODING_SCHEME_DESIGNATOR: Final = 0x00080102
_CODE_TAGS: Final = frozenset({_CODE_VALUE, _CODING_SCHEME_DESIGNATOR})
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_LENGTH_VRS: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def read_source(source: str | os.PathLike[str] | bytes | BinaryIO) -> bytes:
    """Return the input's bytes; read once so every later step works on memory."""
    if isinstance(source, bytes | bytearray | memoryview):
        data: object = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise RejectedReport(f"unreadable file {os.fspath(source)!r}: {exc}") from exc
    elif hasattr(source, "read"):
        data = source.read(MAX_INPUT_BYTES + 1)
    else:
        raise RejectedReport(f"unreadable input: unsupported source type {type(source).__name__}")
    if not isinstance(data, bytes):
        raise RejectedReport("unreadable input: file object is not opened in binary mode")
    if len(data) > MAX_INPUT_BYTES:
        raise RejectedReport(
            f"unreadable input: larger than {MAX_INPUT_BYTES} bytes, not a dose report"
        )
    return data


def parse_dicom(data: bytes) -> tuple[Dataset, bool]:
    """Read a DICOM dataset; retry with ``force`` only for files without the DICM preamble.

    Returns the dataset and whether ``force`` was needed (such a dataset must still prove it is
    an SR before anything is trusted).
    """
    if not data:
        raise RejectedReport("unreadable or truncated DICOM file: empty input (0 bytes)")
    forced = False
    try:
        try:
            dataset = pydicom.dcmread(io.BytesIO(data), force=False)
        except InvalidDicomError:
            forced = True
            dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise RejectedReport(
            f"unreadable or truncated DICOM file: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        _check_not_truncated(dataset)
    except RejectedReport as exc:
        if not forced:
            raise
        # Without the DICM preamble, random bytes (a text file) "declare" absurd lengths:
        # saying "not DICOM" is more useful than "truncated".
        raise RejectedReport(
            f"unreadable or non-DICOM input: no DICM preamble, and the bytes do not parse as "
            f"a DICOM data set ({exc.reason.removeprefix('unreadable or truncated DICOM file: ')})"
        ) from exc
    return dataset, forced


def _check_not_truncated(dataset: Dataset) -> None:
    """Reject a dataset whose top-level elements hold fewer bytes than they declare.

    pydicom reads a defined-length element at end of file without complaint and parses the
    short value as far as it goes, so a file cut in half would import half its events.
    Undefined-length sequences already raise at end of file, so checking the declared length
    of each (still raw) top-level element is enough.
    """
    for element in dataset.elements():
        if not isinstance(element, RawDataElement):
            continue
        value, length = element.value, element.length
        if length in (0, _UNDEFINED_LENGTH) or not isinstance(value, bytes):
            continue
        if len(value) < length:
            raise RejectedReport(
                f"unreadable or truncated DICOM file: element {element.tag} declares "
                f"{length} bytes but only {len(value)} remain"
            )



def scan_code_item(
    raw: bytes, implicit_vr: bool, little_endian: bool
) -> tuple[str | None, str | None] | None:
    """(CodeValue, CodingSchemeDesignator) from the raw value of a code sequence.

    Only the first item is read. Returns None (use pydicom) for anything but a plain item of
    defined-length elements, including an explicit-VR file that switches to implicit VR.
    """
    order = "<" if little_endian else ">"
    if len(raw) < 8:
        return None
    group, element, length = struct.unpack_from(order + "HHL", raw, 0)
    if (group, element) != (0xFFFE, 0xE000):
        return None
    stop = len(raw) if length == _UNDEFINED_LENGTH else min(len(raw), 8 + length)
    found: dict[int, str] = {}
    position = 8
    while position + 8 <= stop:
        group, element = struct.unpack_from(order + "HH", raw, position)
        if group == 0xFFFE:  # item delimiter: end of the first item
            break
        if implicit_vr:
            (value_length,) = struct.unpack_from(order + "L", raw, position + 4)
            position += 8
        else:
            vr = raw[position + 4 : position + 6]
            if not vr.isalpha() or not vr.isupper():
                return None
            if vr in _LONG_LENGTH_VRS:
                if position + 12 > stop:
                    return None
                (value_length,) = struct.unpack_from(order + "L", raw, position + 8)
                position += 12
            else:
                (value_length,) = struct.unpack_from(order + "H", raw, position + 6)
                position += 8
        if value_length == _UNDEFINED_LENGTH or position + value_length > stop:
            return None
        tag = group << 16 | element
        if tag in _CODE_TAGS:
            text = raw[position : position + value_length].decode("latin-1")
            found[tag] = text.strip(" \x00")
        position += value_length
    return found.get(_CODE_VALUE) or None, found.get(_CODING_SCHEME_DESIGNATOR) or None
