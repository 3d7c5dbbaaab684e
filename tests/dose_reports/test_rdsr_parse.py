"""Behaviour of audit.dose_reports.reader on three real C-arm RDSRs and synthetic edge cases."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from audit.dose_reports.reader import read_dose_report
from audit.dose_reports.report import DoseReport, RejectedReport

from .rdsr_builder import (
    CONTINUOUS,
    ENHANCED_SR,
    FLUOROSCOPY,
    PLANE_A,
    PLANE_B,
    ROTATIONAL,
    STATIONARY,
    EventSpec,
    PlaneSpec,
    build_ct_report,
    build_mammography_report,
    build_rdsr,
    fluoro_totals,
    num,
    write,
    write_bare,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "rdsr"
U104 = DATA / "philips_allura_clarity_u104.dcm"
U601 = DATA / "philips_allura_clarity_u601.dcm"
SIEMENS = DATA / "siemens_axiom_example_procedure.dcm"
REAL_FILES = (U104, U601, SIEMENS)

GY_M2 = 1e4  # Gy·m² -> Gy·cm²
GY = 1e3  # Gy -> mGy
REL = 1e-9


def approx(value: float) -> object:
    return pytest.approx(value, rel=REL, abs=1e-12)


@pytest.fixture(scope="module")
def real_reports() -> dict[str, DoseReport]:
    """Parse each real file once; several tests look at different fields."""
    return {path.name: read_dose_report(path) for path in REAL_FILES}


def write_report(tmp_path: Path, name: str = "report.dcm", **kwargs: object) -> Path:
    return write(build_rdsr(**kwargs), tmp_path / name)  # type: ignore[arg-type]


def rejection(source: object) -> str:
    with pytest.raises(RejectedReport) as caught:
        read_dose_report(source)  # type: ignore[arg-type]
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


# ---------------------------------------------------------------------------------------------
# Real files: values stored in each file (SOURCE.md) converted to canonical units.
# ---------------------------------------------------------------------------------------------

REAL_EXPECTED = {
    U104.name: {
        "dap_total_gycm2": 7.8391324289e-06 * GY_M2,
        "fluoro_dap_gycm2": 3.0104686289e-06 * GY_M2,
        "acquisition_dap_gycm2": 4.8286637999e-06 * GY_M2,
        "fluoro_time_s": 37.0,
        "acquisition_time_s": 11.0,
        "air_kerma_total_mgy": 0.00070936639118 * GY,
        "fluoro_air_kerma_mgy": 0.00040633608815 * GY,
        "acquisition_air_kerma_mgy": 0.00030303030303 * GY,
    },
    U601.name: {
        "dap_total_gycm2": 1.0925838852e-05 * GY_M2,
        "fluoro_dap_gycm2": 1.0597173416e-05 * GY_M2,
        "acquisition_dap_gycm2": 3.2866543613e-07 * GY_M2,
        "fluoro_time_s": 55.0,
        "acquisition_time_s": 1.59799999999999,
        "air_kerma_total_mgy": 0.00552845528455 * GY,
        "fluoro_air_kerma_mgy": 0.00548879635137 * GY,
        "acquisition_air_kerma_mgy": 3.9658933174e-05 * GY,
    },
    SIEMENS.name: {
        "dap_total_gycm2": 0.00027902 * GY_M2,
        "fluoro_dap_gycm2": 8.664e-05 * GY_M2,
        "acquisition_dap_gycm2": 0.00019238 * GY_M2,
        "fluoro_time_s": 74.0,
        "acquisition_time_s": 0.0,
        "air_kerma_total_mgy": 0.01406 * GY,
        "fluoro_air_kerma_mgy": 0.00386 * GY,
        "acquisition_air_kerma_mgy": 0.0102 * GY,
    },
}


@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_real_file_totals_in_canonical_units(
    real_reports: dict[str, DoseReport], name: str
) -> None:
    report = real_reports[name]
    for field_name, expected in REAL_EXPECTED[name].items():
        assert getattr(report, field_name) == approx(expected), field_name


def test_real_file_headline_values(real_reports: dict[str, DoseReport]) -> None:
    u104 = real_reports[U104.name]
    assert u104.dap_total_gycm2 == approx(0.078391324289)
    assert u104.air_kerma_total_mgy == approx(0.70936639118)
    siemens = real_reports[SIEMENS.name]
    assert siemens.dap_total_gycm2 == approx(2.7902)
    assert siemens.fluoro_time_s == 74.0
    assert siemens.air_kerma_total_mgy == approx(14.06)


@pytest.mark.parametrize(
    ("name", "events", "fluoro", "acquisition", "max_pps", "frames"),
    [
        (U104.name, 25, 22, 3, 6.25, 15),
        (U601.name, 29, 27, 2, 7.5, 12),
        (SIEMENS.name, 24, 17, 7, 15.0, None),
    ],
)
def test_real_file_events(
    real_reports: dict[str, DoseReport],
    name: str,
    events: int,
    fluoro: int,
    acquisition: int,
    max_pps: float,
    frames: int | None,
) -> None:
    report = real_reports[name]
    assert (report.events, report.fluoro_events, report.acquisition_events) == (
        events,
        fluoro,
        acquisition,
    )
    assert report.pulsed_fluoro_share == 1.0
    assert report.max_pulse_rate_pps == max_pps
    assert report.frames == frames


def test_real_biplane_report_has_planes_a_and_b(real_reports: dict[str, DoseReport]) -> None:
    report = real_reports[U104.name]
    assert [plane.plane for plane in report.planes] == ["A", "B"]
    plane_a, plane_b = report.planes
    assert plane_a.dap_total_gycm2 == approx(0.078391324289)
    assert plane_b.dap_total_gycm2 == 0.0
    assert plane_b.fluoro_time_s == 0.0
    assert plane_b.frames == 0
    assert report.dap_total_gycm2 == approx(plane_a.dap_total_gycm2)
    assert [p.plane for p in real_reports[U601.name].planes] == ["single"]
    assert [p.plane for p in real_reports[SIEMENS.name].planes] == ["single"]


@pytest.mark.parametrize(
    ("name", "manufacturer", "model", "serial", "accession", "when"),
    [
        (
            U104.name,
            "Philips",
            "Allura Clarity",
            "722013-362",
            "A202012100754408",
            datetime(2020, 12, 10, 7, 54, 44, 489000),
        ),
        (
            SIEMENS.name,
            "Siemens",
            "AXIOM-Artis",
            "146936",
            "SERUME0006506591",
            datetime(2017, 12, 12, 14, 15, 39, 984000),
        ),
    ],
)
def test_real_file_identity(
    real_reports: dict[str, DoseReport],
    name: str,
    manufacturer: str,
    model: str,
    serial: str,
    accession: str,
    when: datetime,
) -> None:
    report = real_reports[name]
    assert (report.manufacturer, report.model, report.serial) == (manufacturer, model, serial)
    assert report.accession_number == accession
    assert report.study_datetime == when
    assert report.study_datetime is not None and report.study_datetime.tzinfo is None
    assert report.sop_instance_uid
    assert report.study_instance_uid
    assert report.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.67"


@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_to_json_dict_is_json_safe(real_reports: dict[str, DoseReport], name: str) -> None:
    report = real_reports[name]
    decoded = json.loads(json.dumps(report.to_json_dict(), allow_nan=False))
    assert decoded["sop_instance_uid"] == report.sop_instance_uid
    assert decoded["events"] == report.events
    assert decoded["dap_total_gycm2"] == report.dap_total_gycm2
    assert len(decoded["planes"]) == len(report.planes)
    assert datetime.fromisoformat(decoded["study_datetime"]) == report.study_datetime


def test_bytes_and_file_object_give_the_same_report(real_reports: dict[str, DoseReport]) -> None:
    data = U601.read_bytes()
    assert read_dose_report(data) == real_reports[U601.name]
    assert read_dose_report(io.BytesIO(data)) == real_reports[U601.name]
    assert read_dose_report(str(U601)) == real_reports[U601.name]


# ---------------------------------------------------------------------------------------------
# Synthetic reports: units and vendor quirks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "stored", "expected_gycm2"),
    [
        ("Gy.m2", 2.5e-4, 2.5),
        ("Gym2", 2.5e-4, 2.5),
        ("Gy·m²", 2.5e-4, 2.5),
        ("Gy.cm2", 2.5, 2.5),
        ("dGy.cm2", 25.0, 2.5),
        ("cGy.cm2", 250.0, 2.5),
        ("mGy.cm2", 2500.0, 2.5),
        ("uGy.m2", 250.0, 2.5),
        ("\u00b5Gy.m2", 250.0, 2.5),  # micro sign
        ("\u03bcGy.m2", 250.0, 2.5),  # Greek small letter mu
    ],
)
def test_dap_unit_spellings(
    tmp_path: Path, unit: str, stored: float, expected_gycm2: float
) -> None:
    totals = fluoro_totals(dap=stored, dap_unit=unit)
    report = read_dose_report(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))
    assert report.dap_total_gycm2 == approx(expected_gycm2)
    assert report.fluoro_dap_gycm2 == approx(expected_gycm2)
    assert report.acquisition_dap_gycm2 == 0.0


@pytest.mark.parametrize(
    ("unit", "stored", "expected_mgy"),
    [("Gy", 0.0125, 12.5), ("mGy", 12.5, 12.5), ("uGy", 12500.0, 12.5), ("µGy", 12500.0, 12.5)],
)
def test_air_kerma_units(tmp_path: Path, unit: str, stored: float, expected_mgy: float) -> None:
    totals = fluoro_totals(dose=stored, dose_unit=unit)
    report = read_dose_report(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))
    assert report.air_kerma_total_mgy == approx(expected_mgy)
    assert report.fluoro_air_kerma_mgy == approx(expected_mgy)


@pytest.mark.parametrize(
    ("unit", "stored", "expected_s"), [("s", 78.0, 78.0), ("min", 1.3, 78.0), ("ms", 78000, 78.0)]
)
def test_time_units(tmp_path: Path, unit: str, stored: float, expected_s: float) -> None:
    totals = fluoro_totals()
    totals["113730"] = (stored, unit)
    report = read_dose_report(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))
    assert report.fluoro_time_s == approx(expected_s)


@pytest.mark.parametrize("unit", ["1", "{frames}", None])
def test_frame_count_units(tmp_path: Path, unit: str | None) -> None:
    totals = fluoro_totals()
    totals["113731"] = ("17", unit)
    report = read_dose_report(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))
    assert report.frames == 17
    assert isinstance(report.frames, int)


def test_misspelled_code_meanings_are_ignored(tmp_path: Path) -> None:
    meanings = {
        "113722": "DAP Totl",
        "113728": "Fluoro Dose(RP) Total",
        "113730": "Total Fluro Time",
    }
    spec = PlaneSpec(totals=fluoro_totals(dap=3.0, fluoro_time=42.0, dose=7.0), meanings=meanings)
    report = read_dose_report(write_report(tmp_path, planes=[spec]))
    assert report.dap_total_gycm2 == approx(3.0)
    assert report.fluoro_air_kerma_mgy == approx(7.0)
    assert report.fluoro_time_s == 42.0


def test_private_scheme_with_a_dcm_code_value_is_not_read(tmp_path: Path) -> None:
    private = num("113722", 999.0, "Gy.cm2", "Vendor total", scheme="99VENDOR")
    report = read_dose_report(
        write_report(
            tmp_path, planes=[PlaneSpec(totals=fluoro_totals(dap=3.0))], extra_items=[private]
        )
    )
    assert report.dap_total_gycm2 == approx(3.0)


def test_missing_template_identifier_is_accepted(tmp_path: Path) -> None:
    path = write_report(tmp_path, template_id=None, planes=[PlaneSpec(totals=fluoro_totals())])
    assert read_dose_report(path).dap_total_gycm2 == approx(1.5)


def test_totals_nested_one_container_deeper_are_found(tmp_path: Path) -> None:
    spec = PlaneSpec(totals=fluoro_totals(dap=4.0), nest_totals=True)
    assert read_dose_report(write_report(tmp_path, planes=[spec])).dap_total_gycm2 == approx(4.0)


def test_biplane_per_plane_and_summed_totals(tmp_path: Path) -> None:
    plane_a = PlaneSpec(PLANE_A, fluoro_totals(dap=2.0, fluoro_time=30.0, dose=10.0))
    plane_b = PlaneSpec(PLANE_B, fluoro_totals(dap=0.5, fluoro_time=12.0, dose=4.0))
    events = [EventSpec(plane=PLANE_A), EventSpec(plane=PLANE_B, pulse_rate=15.0)]
    report = read_dose_report(write_report(tmp_path, planes=[plane_a, plane_b], events=events))
    assert [(p.plane, p.dap_total_gycm2, p.fluoro_time_s) for p in report.planes] == [
        ("A", 2.0, 30.0),
        ("B", 0.5, 12.0),
    ]
    assert report.dap_total_gycm2 == approx(2.5)
    assert report.fluoro_time_s == approx(42.0)
    assert report.air_kerma_total_mgy == approx(14.0)
    assert report.frames == 8
    assert report.max_pulse_rate_pps == 15.0


def test_all_planes_container_is_not_counted_twice(tmp_path: Path) -> None:
    planes = [
        PlaneSpec(PLANE_A, fluoro_totals(dap=2.0)),
        PlaneSpec(PLANE_B, fluoro_totals(dap=0.5)),
        PlaneSpec("113890", fluoro_totals(dap=2.5)),  # All Planes
    ]
    report = read_dose_report(write_report(tmp_path, planes=planes))
    assert [p.plane for p in report.planes] == ["A", "B", "all"]
    assert report.dap_total_gycm2 == approx(2.5)


def test_growing_report_instances_parse_with_their_own_events(tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    early = write_report(
        tmp_path,
        "early.dcm",
        study_uid=study,
        planes=[PlaneSpec(totals=fluoro_totals(fluoro_time=20.0))],
        events=[EventSpec()] * 3,
    )
    late = write_report(
        tmp_path,
        "late.dcm",
        study_uid=study,
        planes=[PlaneSpec(totals=fluoro_totals(fluoro_time=50.0))],
        events=[EventSpec()] * 5 + [EventSpec(STATIONARY, "DCM", None, 2.0)],
    )
    first, second = read_dose_report(early), read_dose_report(late)
    assert first.study_instance_uid == second.study_instance_uid == study
    assert first.sop_instance_uid != second.sop_instance_uid
    assert (first.events, second.events) == (3, 6)
    assert (first.fluoro_time_s, second.fluoro_time_s) == (20.0, 50.0)
    assert second.acquisition_events == 1


def test_event_summary_mixed_modes_and_types(tmp_path: Path) -> None:
    events = [
        EventSpec(FLUOROSCOPY, mode=CONTINUOUS, pulse_rate=None),
        EventSpec(FLUOROSCOPY, pulse_rate=10.0),
        EventSpec("44491008", "SCT", pulse_rate=3.0),  # SNOMED CT code for fluoroscopy
        EventSpec(ROTATIONAL, "DCM", None, 30.0),
        EventSpec(STATIONARY, "DCM", None, 60.0),
    ]
    report = read_dose_report(
        write_report(tmp_path, planes=[PlaneSpec(totals=fluoro_totals())], events=events)
    )
    assert (report.events, report.fluoro_events, report.acquisition_events) == (5, 3, 2)
    assert report.pulsed_fluoro_share == pytest.approx(2 / 3)
    assert report.max_pulse_rate_pps == 10.0  # acquisition frame rates are not fluoro pulses


def test_enhanced_sr_class_is_accepted(tmp_path: Path) -> None:
    path = write_report(tmp_path, sop_class=ENHANCED_SR, planes=[PlaneSpec(totals=fluoro_totals())])
    report = read_dose_report(path)
    assert report.sop_class_uid == ENHANCED_SR
    assert report.manufacturer == "Acme Medical"


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    ],
    ids=lambda uid: uid.name,
)
def test_transfer_syntaxes(tmp_path: Path, transfer_syntax: str) -> None:
    ds = build_rdsr(planes=[PlaneSpec(totals=fluoro_totals(dap=2.25))], events=[EventSpec()] * 2)
    report = read_dose_report(write(ds, tmp_path / "report.dcm", transfer_syntax))
    assert (report.dap_total_gycm2, report.fluoro_time_s, report.events) == (2.25, 60.0, 2)


def test_data_set_without_preamble_is_read_and_validated(tmp_path: Path) -> None:
    ds = build_rdsr(planes=[PlaneSpec(totals=fluoro_totals())], events=[EventSpec()])
    path = write_bare(ds, tmp_path / "bare.dcm")
    assert path.read_bytes()[128:132] != b"DICM"
    assert read_dose_report(path).events == 1
    ct = write_bare(build_ct_report(), tmp_path / "bare-ct.dcm")
    assert "CT" in rejection(ct)


def test_timezone_offset_gives_aware_datetime(tmp_path: Path) -> None:
    path = write_report(
        tmp_path, timezone_offset="-0500", planes=[PlaneSpec(totals=fluoro_totals())]
    )
    when = read_dose_report(path).study_datetime
    assert when == datetime(2024, 3, 15, 9, 30, 12, 500000, tzinfo=timezone(timedelta(hours=-5)))


def test_fluoro_events_without_totals_still_count_as_fluoroscopy(tmp_path: Path) -> None:
    report = read_dose_report(write_report(tmp_path, events=[EventSpec()] * 2))
    assert report.planes == ()
    assert report.dap_total_gycm2 is None
    assert report.fluoro_events == 2


# ---------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------


def test_ct_dose_report_is_rejected(tmp_path: Path) -> None:
    reason = rejection(write(build_ct_report(), tmp_path / "ct.dcm"))
    assert reason.startswith("not a fluoroscopy dose report")
    assert "CT" in reason
    assert "113811" in reason


def test_mammography_report_is_rejected(tmp_path: Path) -> None:
    reason = rejection(write(build_mammography_report(), tmp_path / "mg.dcm"))
    assert reason.startswith("not a fluoroscopy dose report")
    assert "mammography" in reason


def test_radiography_only_report_is_rejected(tmp_path: Path) -> None:
    totals = fluoro_totals(dap=0.0, fluoro_time=0.0, dose=0.0)
    totals["113722"] = (0.8, "Gy.cm2")
    path = write_report(
        tmp_path,
        planes=[PlaneSpec(totals=totals)],
        events=[EventSpec(STATIONARY, "DCM", None, None)] * 2,
    )
    reason = rejection(path)
    assert reason.startswith("not a fluoroscopy dose report")
    assert "radiography" in reason


@pytest.mark.parametrize("concept", ["113722", "113725", "113730"])
def test_unknown_unit_is_rejected_naming_unit_and_code(tmp_path: Path, concept: str) -> None:
    totals = fluoro_totals()
    totals[concept] = (1.0, "furlong")
    reason = rejection(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))
    assert "'furlong'" in reason
    assert concept in reason


def test_missing_dap_unit_is_rejected(tmp_path: Path) -> None:
    totals = fluoro_totals()
    totals["113722"] = (1.0, None)
    assert "113722" in rejection(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize("value", ["-1.0", "NaN", "abc"])
def test_invalid_numeric_value_is_rejected(tmp_path: Path, value: str) -> None:
    totals = fluoro_totals()
    totals["113722"] = (value, "Gy.cm2")
    assert "113722" in rejection(write_report(tmp_path, planes=[PlaneSpec(totals=totals)]))


def test_wrong_document_title_is_rejected(tmp_path: Path) -> None:
    path = write_report(
        tmp_path,
        title=("18748-4", "LN", "Diagnostic Imaging Report"),
        planes=[PlaneSpec(totals=fluoro_totals())],
    )
    reason = rejection(path)
    assert "document title" in reason
    assert "18748-4" in reason


def test_other_sop_class_is_rejected(tmp_path: Path) -> None:
    path = write_report(
        tmp_path, sop_class="1.2.840.10008.5.1.4.1.1.2", planes=[PlaneSpec(totals=fluoro_totals())]
    )
    reason = rejection(path)
    assert "1.2.840.10008.5.1.4.1.1.2" in reason
    assert "CT Image Storage" in reason


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_truncated_real_file_is_rejected(tmp_path: Path, path: Path) -> None:
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    assert rejection(cut).startswith("unreadable")


@pytest.mark.parametrize(
    "data",
    [b"", b"This is a plain text file, not DICOM.\n" * 20, b"\x00" * 500, b"DICM"],
    ids=["empty", "text", "zeros", "magic-only"],
)
def test_non_dicom_bytes_are_rejected(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input.dcm"
    path.write_bytes(data)
    assert rejection(path).startswith("unreadable")
    assert rejection(data).startswith("unreadable")


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    assert rejection(tmp_path / "absent.dcm").startswith("unreadable")


def test_text_mode_file_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_text("hello")
    with path.open() as handle:
        assert rejection(handle).startswith("unreadable")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", range(30))
def test_corrupted_real_file_never_crashes(seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray(REAL_FILES[seed % len(REAL_FILES)].read_bytes())
    for _ in range(rng.randint(1, 40)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if seed % 3 == 0:
        data = data[: rng.randrange(len(data))]
    try:
        result = read_dose_report(bytes(data))
    except RejectedReport as exc:
        assert exc.reason
    else:
        assert isinstance(result, DoseReport)
