"""Issue 15's fields through the export and CSV import: height, BMI, C-arm operator, trainee,
contrast class and an ultrasound-guided record come back the same from an export, and a legacy
log's own headers ("Height", "Operator", "Trainee") are read."""

from __future__ import annotations

from pathlib import Path

from audit.auth import Actor
from audit.log.csv_import import import_csv
from audit.log.service import ProcedureLog
from audit.storage.engine import make_engine
from tests.conftest import valid_record
from tests.export.test_export_roundtrip import _ids, cli, fresh, read_csv
from tests.log.test_case_mix import ultrasound_sij

__all__ = ["fresh"]  # the fixture, used by name
FIELDS = ("patient_height_cm", "bmi_kg_m2", "carm_operator", "trainee_present",
          "contrast_class", "guidance", "fluoro_time_s", "dap_gycm2", "air_kerma_mgy")


def test_new_fields_survive_export_and_import(db_url: str, service: ProcedureLog,
                                              admin: Actor, fresh: str,
                                              tmp_path: Path) -> None:
    records = [valid_record(patient_weight_kg=102, patient_height_cm=170,
                            carm_operator="technologist", trainee_present=False,
                            contrast_class="gadolinium"),
               ultrasound_sij(performed_at="2026-03-15T09:30:00-05:00", patient_id="MRN0002",
                              patient_weight_kg=60, patient_height_cm=165,
                              trainee_present=True)]
    ids = [r.record_id for r in service.log_many(records, admin, create_missing=True)]
    out = tmp_path / "export"
    done = cli(db_url, "export", "log", "--out", str(out), "--include-phi")
    assert done.returncode == 0, done.stderr
    rows = read_csv(out / "procedures.csv")
    assert [r["bmi_kg_m2"] for r in rows] == ["35.3", "22"]
    assert [r["guidance"] for r in rows] == ["fluoroscopy", "ultrasound"]
    imported = cli(fresh, "import", "csv", str(out / "procedures.csv"), "--create-missing")
    assert imported.returncode == 0, imported.stderr
    copy = ProcedureLog(make_engine(fresh))
    try:
        for old_id, new_id in zip(ids, _ids(copy.engine), strict=True):
            before, after = service.get(old_id, admin), copy.get(new_id, admin)
            assert {f: after[f] for f in FIELDS} == {f: before[f] for f in FIELDS}
    finally:
        copy.engine.dispose()


def test_a_legacy_log_with_its_own_headers(service: ProcedureLog, admin: Actor,
                                           tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_text(
        "Date,Site,Room,Physician,Tech,MRN,Pregnancy,Procedure,Level,Side,Guidance,Fluoro time,"
        "DAP (Gy·cm²),Images,Contrast confirmation,Contrast,Contrast volume,Views,"
        "Realtime contrast,Weight,Height,Operator,Trainee,Contrast type\n"
        "2026-03-14T09:30:00-05:00,Riverside,OR 1,Dr. Chen,tech1,MRN9,not_pregnant,TFESI,"
        "L4;L5,left,fluoroscopy,0:40,0.9,2,confirmed,iohexol 240,1.5,AP;LAT,yes,95,178,"
        "radiographer,yes,iodinated\n", encoding="utf-8")
    result = import_csv(service, admin, path, create_missing=True)
    [row] = result.imported
    assert row.record_id is not None, result
    shown = service.get(row.record_id, admin)
    assert shown["patient_height_cm"] == 178 and shown["bmi_kg_m2"] == 30.0
    assert shown["carm_operator"] == "radiographer" and shown["trainee_present"] is True
    assert shown["contrast_class"] == "iodinated"
