"""Every vendor's report (issue 13): lenient units on irradiation event figures, strict units on
dose totals, and other modalities refused whatever totals they carry.

Reports are built with rdsr_builder and the three real files are mutated (a unit code changed,
the Modality or template set), then read exactly as `import rdsr` reads them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from audit.dose_reports.reader import read_dose_report
from audit.dose_reports.report import DoseReport, RejectedReport
from audit.units import LENIENT_QUANTITIES, Quantity, rdsr_lenient_unit_factor

from .dose_helpers import REAL_FILES
from .rdsr_builder import (
    COMPREHENSIVE_SR,
    EventSpec,
    PlaneSpec,
    build_rdsr,
    fluoro_totals,
    num,
    write,
)
from .test_rdsr_parse import REAL_EXPECTED, approx

#: The pulse-rate spellings vendors write. "pulse/s" is GE's (OpenREM's test file
#: RF-RDSR-GE.dcm, a GE OEC report; GPL, so not copied here: reproduced on our own files).
PULSE_SPELLINGS = ("/s", "{pulse}/s", "pulse/s", "Hz", "1/s", "{pulses}/s", "pulses/s",
                   "PULSE/S", "{Pulse}/s", " pulse/s ", "fps", "pps")


def items(content: list[Dataset]) -> Iterator[Dataset]:
    for item in content:
        yield item
        if "ContentSequence" in item:
            yield from items(item.ContentSequence)


def code_of(item: Dataset) -> str | None:
    names = item.get("ConceptNameCodeSequence")
    return names[0].CodeValue if names else None


def set_unit(ds: Dataset, concept: str, unit: str) -> int:
    """Write ``unit`` as the unit of every NUM item ``concept``; how many were changed."""
    changed = 0
    for item in items(ds.ContentSequence):
        if code_of(item) == concept and item.get("MeasuredValueSequence"):
            units = item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence
            units[0].CodeValue = unit
            changed += 1
    return changed


def encoded(ds: Dataset) -> bytes:
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def read(ds: Dataset) -> DoseReport:
    return read_dose_report(encoded(ds))


def rejection(ds: Dataset) -> str:
    with pytest.raises(RejectedReport) as caught:
        read(ds)
    return caught.value.reason


def built(pulse_unit: str = "{pulse}/s", extras: tuple[Dataset, ...] = ()) -> Dataset:
    return build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())],
                      events=[EventSpec(pulse_rate_unit=pulse_unit, extras=extras)] * 3)


# --- auxiliary units: lenient --------------------------------------------------------------------

@pytest.mark.parametrize("unit", PULSE_SPELLINGS)
def test_a_built_report_with_any_vendor_pulse_rate_spelling_imports_with_its_totals(
        unit: str) -> None:
    report = read(built(unit))
    assert (report.dap_total_gycm2, report.fluoro_time_s, report.events) == (1.5, 60.0, 3)
    assert report.max_pulse_rate_pps == 7.5 and report.warnings == ()
    assert [e.pulse_rate_pps for e in report.irradiation_events] == [7.5] * 3


@pytest.mark.parametrize("unit", ["pulse/s", "{pulse}/s", "Hz", "furlong"])
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_real_files_with_the_pulse_rate_unit_changed_keep_their_totals(
        path: Path, unit: str) -> None:
    ds = pydicom.dcmread(path)
    changed = set_unit(ds, "113791", unit)
    assert changed > 0
    report = read(ds)
    for name, value in REAL_EXPECTED[path.name].items():
        assert getattr(report, name) == approx(value), name
    rates = [e.pulse_rate_pps for e in report.irradiation_events]
    if unit == "furlong":
        assert rates == [None] * len(rates)
        assert report.max_pulse_rate_pps is None
        assert report.warnings == (
            f"Pulse Rate (113791) left out of {changed} irradiation events: unit 'furlong' is "
            "not a known pulse/s unit",)
    else:
        assert report.warnings == () and any(rate is not None for rate in rates)


@pytest.mark.parametrize(("concept", "unit", "value", "field", "expected"), [
    ("113733", "kV", 70, "kvp", 70.0),
    ("113733", "kVp", 70, "kvp", 70.0),
    ("113734", "mA", 12.5, "tube_current_ma", 12.5),
    ("113734", "uA", 12500, "tube_current_ma", 12.5),
    ("113734", "MA", 12.5, "tube_current_ma", 12.5),
    ("113790", "m2", 0.04, "field_area_cm2", 400.0),
    ("113790", "cm2", 400, "field_area_cm2", 400.0),
    ("113790", "mm2", 40000, "field_area_cm2", 400.0),
    ("113790", "cm²", 400, "field_area_cm2", 400.0),
    ("113824", "ms", 250, "exposure_time_s", 0.25),
    ("113824", "s", 0.25, "exposure_time_s", 0.25),
    ("113824", "msec", 250, "exposure_time_s", 0.25),
    ("113742", "s", 4.5, "duration_s", 4.5),
    ("112011", "deg", -30, "primary_angle_deg", -30.0),
    ("112012", "°", 15, "secondary_angle_deg", 15.0),
    ("113738", "Gy", 0.002, "air_kerma_mgy", 2.0),
])
def test_event_figures_are_read_in_ucum_and_vendor_spellings(
        concept: str, unit: str, value: float, field: str, expected: float) -> None:
    report = read(built(extras=(num(concept, value, unit, concept),)))
    assert report.warnings == ()
    assert [getattr(e, field) for e in report.irradiation_events] == [approx(expected)] * 3


@pytest.mark.parametrize(("concept", "meaning"), [
    ("113733", "KVP"), ("113790", "Collimated Field Area"), ("122130", "Dose Area Product"),
    ("113824", "Exposure Time")])
def test_an_event_figure_in_an_unknown_unit_is_left_out_with_a_warning_not_a_rejection(
        concept: str, meaning: str) -> None:
    ds = built(extras=(num(concept, 5, "bananas", meaning),))
    set_unit(ds, concept, "bananas")  # the builder writes each event's DAP itself
    report = read(ds)
    assert report.dap_total_gycm2 == 1.5
    assert report.warnings == (f"{meaning} ({concept}) left out of 3 irradiation events: unit "
                               f"'bananas' is not a known {_unit(concept)} unit",)


def _unit(concept: str) -> str:
    return {"113733": "kV", "113790": "cm²", "122130": "Gy·cm²", "113824": "s"}[concept]


def test_an_event_figure_out_of_range_is_left_out_with_a_warning() -> None:
    report = read(built(extras=(num("113733", 5000, "kV", "KVP"),)))
    assert [e.kvp for e in report.irradiation_events] == [None] * 3
    assert report.warnings[0].startswith("KVP (113733) left out of 3 irradiation events: value "
                                         "5000 kV is out of range; allowed: 0 to 200 kV")


@pytest.mark.parametrize("concept", ["113722", "113725", "113730"])
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_a_total_in_an_unknown_unit_still_rejects_the_real_file_naming_attribute_and_unit(
        path: Path, concept: str) -> None:
    ds = pydicom.dcmread(path)
    assert set_unit(ds, concept, "pulse/s") > 0  # accepted for a pulse rate, never for a total
    reason = rejection(ds)
    assert "unknown unit 'pulse/s' for" in reason and f"({concept})" in reason


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(unit=st.text(min_size=1, max_size=12))
def test_whatever_the_pulse_rate_unit_the_report_imports_with_its_totals(unit: str) -> None:
    if not unit.strip(" \x00\t\r\n") or "\\" in unit:
        return  # no unit at all (or a multi-valued one) is tested elsewhere
    report = read(built(unit))
    assert (report.dap_total_gycm2, report.fluoro_time_s) == (1.5, 60.0)
    factor = rdsr_lenient_unit_factor(Quantity.PULSE_RATE, unit.strip(" \x00\t\r\n"))
    rates = [e.pulse_rate_pps for e in report.irradiation_events]
    if factor is None:
        assert rates == [None] * 3 and len(report.warnings) == 1
        assert report.warnings[0].startswith("Pulse Rate (113791) left out of 3")
    else:
        assert report.warnings == () or rates == [None] * 3  # 7.5 x factor may be out of range


@settings(max_examples=300, deadline=None)
@given(quantity=st.sampled_from(sorted(LENIENT_QUANTITIES)), unit=st.text(max_size=16))
def test_a_lenient_unit_factor_is_unknown_or_a_positive_finite_number(
        quantity: Quantity, unit: str) -> None:
    factor = rdsr_lenient_unit_factor(quantity, unit)
    assert factor is None or 0 < factor < 1e6
    if factor is not None:  # case and braces never change the meaning
        assert rdsr_lenient_unit_factor(quantity, unit.upper()) in (factor, None)


# --- other modalities: refused --------------------------------------------------------------------

@pytest.mark.parametrize(("modality", "kind"), [
    ("CT", "CT Radiation Dose report"), ("MG", "mammography dose report"),
    ("DX", "projection radiography dose report"), ("NM", "nuclear medicine dose report")])
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_a_real_fluoroscopy_report_marked_as_another_modality_is_refused(
        path: Path, modality: str, kind: str) -> None:
    ds = pydicom.dcmread(path)
    ds.Modality = modality
    reason = rejection(ds)
    assert reason == (f"not a fluoroscopy dose report: {kind} (Modality {modality}); refused "
                      "even though it carries fluoroscopy totals or events")


def test_a_ct_template_is_refused_even_with_fluoroscopy_totals() -> None:
    ds = pydicom.dcmread(REAL_FILES[0])
    ds.ContentTemplateSequence[0].TemplateIdentifier = "10011"
    assert "CT Radiation Dose report (template TID 10011)" in rejection(ds)


def test_ct_content_in_a_fluoroscopy_report_is_refused() -> None:
    ds = built()
    ds.ContentSequence.append(num("113813", 450.0, "mGy.cm", "DLP Total"))
    assert rejection(ds).startswith("not a fluoroscopy dose report: CT Radiation Dose report "
                                    "(113813 present); refused even though")


@pytest.mark.parametrize(("concept", "kind"), [
    ("111631", "mammography"), ("113845", "projection radiography")])
def test_mammography_and_radiography_acquisitions_are_refused_beside_fluoroscopy(
        concept: str, kind: str) -> None:
    ds = built(extras=(num(concept, 1.0, "mGy" if concept == "111631" else "1", concept),))
    assert rejection(ds).startswith(f"not a fluoroscopy dose report: {kind} dose report")


def test_a_radiopharmaceutical_dose_report_sop_class_is_named_nuclear_medicine() -> None:
    ds = built()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.68"
    reason = rejection(ds)
    assert "1.2.840.10008.5.1.4.1.1.88.68" in reason and "nuclear medicine" in reason


def test_a_comprehensive_sr_with_the_dose_report_title_is_read(tmp_path: Path) -> None:
    ds = build_rdsr(sop_class=COMPREHENSIVE_SR, planes=[PlaneSpec(totals=fluoro_totals())],
                    events=[EventSpec()])
    assert read_dose_report(write(ds, tmp_path / "comprehensive.dcm")).events == 1


def test_an_integrated_projection_radiography_device_type_is_not_refused() -> None:
    """A Philips Azurion (interventional) writes it: only a cassette-based device refuses."""
    from .rdsr_builder import coded

    ds = built()
    ds.ContentSequence.append(coded("122142", "113958"))
    assert read(ds).events == 3
    ds.ContentSequence[-1].ConceptCodeSequence[0].CodeValue = "113959"
    assert "acquisition device type 113959" in rejection(ds)
