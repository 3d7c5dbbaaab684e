"""Mutate encoded dose reports byte by byte, fast, for the fuzz test.

Why bytes and not pydicom data sets: copying and writing a data set costs 20-120 ms, a byte
edit well under one, and the fuzz test needs thousands of mutants in a minute. A mutant is a
seed's encoding (Explicit VR Little Endian, written once) edited through :func:`spans`, which
locates every element and sequence item; an edit fixes the defined lengths of the sequences
and items around it, so the result is what a broken or crafted file would hold, not a file
pydicom can no longer find its way through (truncation and byte flips take care of that).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                      "UV"})
CONTENT_SEQUENCE, NUMERIC_VALUE, FLOAT_VALUE = 0x0040A730, 0x0040A30A, 0x0040A161
UNITS_SEQUENCE, CODE_VALUE, TEXT_VALUE = 0x004008EA, 0x00080100, 0x0040A160
SOP_INSTANCE_UID, STUDY_INSTANCE_UID = 0x00080018, 0x0020000D
STUDY_DATE, STUDY_TIME, TIMEZONE = 0x00080020, 0x00080030, 0x00080201
#: Top-level texts: MRN, accession, device (manufacturer, model, serial); and two IS numbers.
TEXTS = (0x00100020, 0x00080050, 0x00080070, 0x00081090, 0x00181000, 0x00200011, 0x00200013)

DS_TEXTS = ("1e308", "1.5e308", "-1", "-0", "nan", "NaN", "inf", "-inf", "Infinity", "1e-320",
            "4.9e-324", "0", "2.5e4", "25000.0001", "1e999", "9" * 400, "1" + "0" * 40,
            "", " ", "abc", "1,5", "0x10", "1e", "12.5 mGy", "\x00")
FD_VALUES = (1e308, 1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), 1e-320,
             5e-324, -1.0, 0.0, 25000.0, 1e5)
UNITS = ("Gy.m2", "Gy.cm2", "mGy.cm2", "uGy.m2", "mGy", "Gy", "uGy", "s", "ms", "min", "h", "1",
         "{pulse}/s", "furlong", "", "GY.M2", "Gy·m²")
DATES = ("99991231", "00010101", "20240230", "2024", "19000101", "21000101", "", "2024-03-15")
TIMES = ("235959.999999", "000000", "250000", "12", "", "9" * 30)
OFFSETS = ("-1400", "+1400", "+0000", "-1200", "+9999", "", "EST")
HUGE_TEXTS = ("x" * 60_000, "\x00" * 100, "9" * 5000, "é" * 300, "1.2.3." * 40, "")


class Choices(Protocol):
    """Where a mutation's choices come from: Hypothesis in the test, random when debugging."""

    def integer(self, low: int, high: int) -> int: ...

    def pick(self, options: Sequence[T]) -> T: ...


@dataclass
class Span:
    """One element or sequence item of an encoding: where its header, length and value are."""

    tag: int
    vr: str
    start: int
    value: int
    end: int
    length_at: int
    length_size: int
    defined: bool
    parents: tuple[int, ...]


def spans(data: bytes) -> list[Span]:
    """Every element and item after the 128-byte preamble and "DICM", depth first."""
    found: list[Span] = []
    _elements(data, 132, len(data), (), found)
    return found


def _elements(data: bytes, pos: int, stop: int, parents: tuple[int, ...],
              found: list[Span]) -> int:
    while pos < stop:
        group, number = struct.unpack_from("<HH", data, pos)
        tag = group << 16 | number
        if tag == ITEM_END:
            return pos + 8
        vr = data[pos + 4:pos + 6].decode("latin-1")
        if vr in LONG_VRS:
            length_at, size = pos + 8, 4
            (length,) = struct.unpack_from("<I", data, length_at)
        else:
            length_at, size = pos + 6, 2
            (length,) = struct.unpack_from("<H", data, length_at)
        index = len(found)
        value = length_at + size
        found.append(Span(tag, vr, pos, value, 0, length_at, size, length != UNDEFINED, parents))
        if vr == "SQ":
            limit = len(data) if length == UNDEFINED else value + length
            end = _items(data, value, limit, (*parents, index), found)
        else:
            end = value + length
        found[index].end = end
        pos = end
    return pos


def _items(data: bytes, pos: int, stop: int, parents: tuple[int, ...],
           found: list[Span]) -> int:
    while pos < stop:
        group, number, length = struct.unpack_from("<HHI", data, pos)
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            return pos + 8
        index = len(found)
        found.append(Span(tag, "", pos, pos + 8, 0, pos + 4, 4, length != UNDEFINED, parents))
        limit = len(data) if length == UNDEFINED else pos + 8 + length
        end = _elements(data, pos + 8, limit, (*parents, index), found)
        found[index].end = end
        pos = end
    return pos


def splice(data: bytes, found: list[Span], index: int, new: bytes) -> bytes:
    """Replace span ``index`` by ``new``, fixing the defined lengths that enclose it."""
    span = found[index]
    delta = len(new) - (span.end - span.start)
    edited = bytearray(data[:span.start] + new + data[span.end:])
    for parent in (found[p] for p in span.parents):
        if parent.defined:
            fmt = "<I" if parent.length_size == 4 else "<H"
            (length,) = struct.unpack_from(fmt, edited, parent.length_at)
            struct.pack_into(fmt, edited, parent.length_at, length + delta)
    return bytes(edited)


def element(tag: int, vr: str, value: bytes) -> bytes:
    """An Explicit VR Little Endian element, padded to an even length."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode("ascii"))
    if vr in LONG_VRS:
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def set_value(data: bytes, found: list[Span], index: int, text: str) -> bytes:
    """Give element ``index`` a new text value (cut to what its length field can state)."""
    span = found[index]
    raw = text.encode("utf-8")
    if span.vr not in LONG_VRS:
        raw = raw[:0xFFFE]
    return splice(data, found, index, element(span.tag, span.vr, raw))


def _where(found: list[Span], test: Callable[[Span, list[Span]], bool]) -> list[int]:
    """Indexes of the spans that pass ``test(span, found)``."""
    return [i for i, span in enumerate(found) if test(span, found)]


def _top(found: list[Span], tag: int) -> list[int]:
    return _where(found, lambda s, _: s.tag == tag and not s.parents)


def with_uids(data: bytes, sop: str, study: str, layout: list[Span] | None = None) -> bytes:
    """The encoding with its (data set) SOP instance and study UIDs replaced: top-level
    elements, so no enclosing length changes; the later one is replaced first. ``layout`` is
    ``spans(data)`` when the caller has it already."""
    found = layout if layout is not None else spans(data)
    targets = [(_top(found, tag)[:1], uid) for tag, uid in ((SOP_INSTANCE_UID, sop),
                                                             (STUDY_INSTANCE_UID, study))]
    for indexes, uid in sorted(targets, key=lambda t: -found[t[0][0]].start if t[0] else 0):
        for index in indexes:
            data = set_value(data, found, index, uid)
    return data


def mutate(data: bytes, draw: Choices, layout: list[Span] | None = None) -> bytes:
    """0-4 structural or value edits, then maybe a truncation and byte flips. ``layout`` is
    ``spans(data)`` when the caller has it already (a walk costs milliseconds)."""
    for _ in range(draw.integer(0, 4)):
        found = layout if layout is not None else spans(data)
        layout = None
        kind = draw.pick(("remove_item", "repeat_item", "remove_element", "ds", "fd", "unit",
                          "date", "text"))
        if kind in ("remove_item", "repeat_item"):
            items = _where(found, lambda s, f: s.tag == ITEM and bool(s.parents)
                           and f[s.parents[-1]].tag == CONTENT_SEQUENCE)
            if items:
                index = draw.pick(items)
                span = found[index]
                copy = data[span.start:span.end]
                data = splice(data, found, index, copy * 2 if kind == "repeat_item" else b"")
        elif kind == "remove_element":
            top = _where(found, lambda s, _: not s.parents and s.tag >> 16 != 0x0002)
            if top:
                data = splice(data, found, draw.pick(top), b"")
        elif kind in ("ds", "fd"):
            numbers = _where(found, lambda s, _: s.tag == NUMERIC_VALUE)
            if numbers:
                index = draw.pick(numbers)
                if kind == "ds":
                    data = set_value(data, found, index, draw.pick(DS_TEXTS))
                else:  # an FD before the DS: the reader prefers it
                    fd = struct.pack("<HH2sHd", 0x0040, 0xA161, b"FD", 8, draw.pick(FD_VALUES))
                    span = found[index]
                    data = splice(data, found, index, fd + data[span.start:span.end])
        elif kind == "unit":
            units = _where(found, lambda s, f: s.tag == CODE_VALUE and len(s.parents) >= 2
                           and f[s.parents[-2]].tag == UNITS_SEQUENCE)
            if units:
                data = set_value(data, found, draw.pick(units), draw.pick(UNITS))
        elif kind == "date":  # top-level elements, edited from the last so offsets hold
            for tag, options in ((TIMEZONE, OFFSETS), (STUDY_TIME, TIMES), (STUDY_DATE, DATES)):
                for index in _top(found, tag)[:1]:
                    data = set_value(data, found, index, draw.pick(options))
        else:
            texts = _where(found, lambda s, _: (s.tag in TEXTS and not s.parents)
                           or s.tag == TEXT_VALUE)
            if texts:
                data = set_value(data, found, draw.pick(texts), draw.pick(HUGE_TEXTS))
    mutated = bytearray(data)
    if draw.integer(0, 3) == 0:
        mutated = mutated[: draw.integer(0, len(mutated))]
    if mutated and draw.integer(0, 2) == 0:
        for _ in range(draw.integer(1, 20)):
            mutated[draw.integer(0, len(mutated) - 1)] = draw.integer(0, 255)
    return bytes(mutated)
