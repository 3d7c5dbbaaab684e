"""Realistic synthetic data, drawn from the published distributions of docs/reference.md §4.

What the data is built to show (so the dashboards have something true to find):
- per-procedure log-normal fluoroscopy time and KAP around the catalog's typical (published)
  medians, rising with body size (weight) and with the number of levels treated;
- rooms with different dose levels, so local DRLs differ from achievable doses;
- physicians with habits: one high-dose outlier (about 3x KAP and 2x time), one who often omits
  contrast confirmation, different use of pulsed and low-dose modes;
- contraindications with reasons, vascular uptake in TFESI (more in cervical) mostly followed by
  repositioning, a few particulate steroids in cervical TFESI, a few sessions over the level limit;
- a few non-spine ("OTHER") cases above the substantial radiation dose levels;
- patients with repeat procedures (cumulative dose alerts).

Everything is vectorised with numpy and written with executemany in chunks: no per-row queries.
Deterministic for a given --seed and end date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from audit.catalog import load_catalog
from audit.dosimetry import effective_doses
from audit.log.pseudonym import pseudonym, site_secret
from audit.settings import load_settings
from audit.storage.engine import read_session, write_session
from audit.storage.models import (
    Patient,
    Physician,
    Procedure,
    ProcedureLevel,
    Room,
    Site,
    UserAccount,
    utcnow,
)
from audit.trail import record_event
from audit.units import dap_factor
from audit.vocab import CONTRAST_AGENTS, SEGMENTS, AuditAction, DapUnit, Region, Role, level_region

DEMO_ACTOR = "demo"
CHUNK = 20_000
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class DemoRoom:
    site: str
    name: str
    make: str
    model: str
    unit: str
    dose_factor: float
    kap_correction: float = 1.0


ROOMS = (
    DemoRoom("Riverside Spine Center", "OR 1", "Ziehm", "Vision RFD", "cGy·cm²", 0.8),
    DemoRoom("Riverside Spine Center", "OR 2", "GE", "OEC 9900 Elite", "Gy·cm²", 1.0),
    DemoRoom("Riverside Spine Center", "Procedure Room 3", "Siemens", "Cios Alpha", "µGy·m²",
             1.25, 0.75),
    DemoRoom("Northgate Pain Clinic", "Suite A", "Philips", "Zenition 70", "mGy·cm²", 0.9),
    DemoRoom("Northgate Pain Clinic", "Suite B", "GE", "OEC Elite CFD", "dGy·cm²", 1.1),
)


@dataclass(frozen=True)
class DemoPhysician:
    name: str
    dose_factor: float  # multiplies KAP
    time_factor: float
    omit_contrast: float  # probability of not confirming where contrast is required
    pulsed_rate: float
    low_dose_rate: float


PHYSICIANS = (
    DemoPhysician("Dr. Amelia Chen", 0.8, 0.8, 0.01, 0.95, 0.85),
    DemoPhysician("Dr. Rahul Mehta", 1.0, 1.0, 0.02, 0.85, 0.6),
    DemoPhysician("Dr. Sofia Álvarez", 0.9, 1.1, 0.02, 0.9, 0.7),
    DemoPhysician("Dr. James O'Connor", 1.1, 1.0, 0.03, 0.7, 0.4),
    DemoPhysician("Dr. Grant Holloway", 3.0, 2.0, 0.03, 0.35, 0.15),  # the high-dose outlier
    DemoPhysician("Dr. Hannah Weiss", 1.0, 0.9, 0.35, 0.8, 0.5),  # often omits contrast
    DemoPhysician("Dr. Kwame Mensah", 0.95, 1.0, 0.02, 0.9, 0.75),
    DemoPhysician("Dr. Li Wei", 1.05, 1.1, 0.02, 0.75, 0.55),
)
TECHNOLOGISTS = ("jsmith", "mgarcia", "tnguyen", "rpatel", "kobrien", "lmartin")

# code: (share, weight of levels choice) — mix of a busy interventional pain practice.
MIX = {"TFESI": 0.28, "ILESI": 0.15, "MBB": 0.14, "RFA": 0.10, "SIJ": 0.10, "CAUDAL": 0.06,
       "FACET": 0.07, "SYMPATHETIC": 0.03, "DISCOGRAPHY": 0.02, "OTHER": 0.05}
LEVEL_COUNTS = {"TFESI": ([1, 2, 3], [0.62, 0.37, 0.01]), "ILESI": ([1], [1.0]),
                "MBB": ([2, 3, 4], [0.45, 0.45, 0.10]), "RFA": ([2, 3, 4], [0.4, 0.45, 0.15]),
                "FACET": ([1, 2], [0.5, 0.5]), "DISCOGRAPHY": ([2, 3, 4], [0.3, 0.5, 0.2]),
                "SYMPATHETIC": ([1], [1.0]), "SIJ": ([1], [1.0])}
REGION_SHARE = {  # (cervical, thoracic, lumbar) for by-level types
    "TFESI": (0.12, 0.03, 0.85), "ILESI": (0.25, 0.05, 0.70), "MBB": (0.2, 0.05, 0.75),
    "RFA": (0.2, 0.05, 0.75), "FACET": (0.15, 0.05, 0.80), "DISCOGRAPHY": (0.1, 0.0, 0.9),
    "SYMPATHETIC": (0.3, 0.0, 0.7),
}
#: The agents demo records use: the three iodinated ones the entry form lists first.
DEMO_AGENTS = CONTRAST_AGENTS[:3]


def _ensure_reference_data(engine: Engine) -> dict[str, Any]:
    """Sites, rooms, physicians, technologists: created once (idempotent), ids returned."""
    with write_session(engine) as s:
        sites = {}
        for site_name in dict.fromkeys(r.site for r in ROOMS):
            site = s.scalar(select(Site).where(Site.name == site_name))
            if site is None:
                site = Site(name=site_name, active=True)
                s.add(site)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE, entity="site",
                             entity_id=site.id, after={"name": site_name}, reason="demo data")
            sites[site_name] = site.id
        rooms = []
        for r in ROOMS:
            room = s.scalar(select(Room).where(Room.name == r.name,
                                               Room.site_id == sites[r.site]))
            if room is None:
                room = Room(site_id=sites[r.site], name=r.name, make=r.make, model=r.model,
                            serial=f"DEMO-{len(rooms) + 1:04d}",
                            dap_display_unit=r.unit, kap_correction_factor=r.kap_correction,
                            active=True)
                s.add(room)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE, entity="room",
                             entity_id=room.id, after={"name": r.name, "site": r.site,
                                                       "make": r.make, "model": r.model},
                             reason="demo data")
            rooms.append((room.id, sites[r.site]))
        physicians = []
        for p in PHYSICIANS:
            doc = s.scalar(select(Physician).where(Physician.name == p.name))
            if doc is None:
                doc = Physician(name=p.name, active=True)
                s.add(doc)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE, entity="physician",
                             entity_id=doc.id, after={"name": p.name}, reason="demo data")
            physicians.append(doc.id)
        techs = []
        for username in TECHNOLOGISTS:
            user = s.scalar(select(UserAccount).where(UserAccount.username == username))
            if user is None:
                user = UserAccount(username=username, role=Role.TECHNOLOGIST.value,
                                   can_sign_in=False, active=True, failed_logins=0)
                s.add(user)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE,
                             entity="user_account", entity_id=user.id,
                             after={"username": username, "role": "technologist",
                                    "can_sign_in": False}, reason="demo data")
            techs.append(user.id)
        settings = load_settings(s)
        catalog = load_catalog(s)
    return {"rooms": rooms, "physicians": physicians, "techs": techs, "settings": settings,
            "catalog": catalog}


def _level_windows(code: str, region: str, count: int) -> list[tuple[str, ...]]:
    """Every run of `count` adjacent levels a clinician would treat for `code` in `region`."""
    if code == "SIJ":
        return [("SIJ",)]
    if code == "SYMPATHETIC":
        return [("C6",)] if region == Region.CERVICAL else [("L2-L3",)]
    if code == "TFESI":  # foramina named by vertebra: L4, L5, S1 (C5, C6 in the neck)
        pool = {"cervical": ["C4", "C5", "C6", "C7"], "thoracic": ["T10", "T11", "T12"],
                "lumbar": ["L3", "L4", "L5", "L4", "L5"], "sacral": ["S1"]}[region]
    else:
        pool = [s for s in SEGMENTS if level_region(s).value == region]
        if region == "lumbar":
            pool = pool[-3:] if code in {"ILESI", "DISCOGRAPHY"} else pool[-4:]
        if region == "cervical":
            pool = pool[3:]
    count = min(count, len(set(pool)))
    windows = [tuple(pool[i:i + count]) for i in range(len(pool) - count + 1)]
    return [w for w in windows if len(set(w)) == len(w)] or [tuple(pool[:1])]


def generate(
    engine: Engine,
    procedures: int = 5000,
    seed: int = 1,
    until: date | None = None,
    months: int = 24,
    progress: bool | ProgressFn = False,
) -> dict[str, Any]:
    """Insert `procedures` synthetic records ending at `until` (default today)."""
    if procedures < 1:
        raise ValueError("procedures must be at least 1")
    ref = _ensure_reference_data(engine)
    rng = np.random.default_rng(seed)
    end = datetime.combine(until or datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    start = end - timedelta(days=int(months * 30.4))
    n = procedures
    n_patients = max(1, n // 3)  # about one patient per three procedures: many repeats
    patients = {
        "weight": np.round(np.clip(rng.lognormal(np.log(82), 0.2, n_patients), 40, 200), 1),
        "sex": rng.choice(np.array(["F", "M"], dtype=object), n_patients),
    }
    mrns = [f"DEMO{seed:03d}{i:07d}" for i in range(n_patients)]
    secret = site_secret(engine)
    _insert_patients(engine, mrns, [pseudonym(secret, m) for m in mrns])
    with read_session(engine) as s:
        ids = dict(s.execute(select(Patient.mrn, Patient.id)
                             .where(Patient.mrn.like(f"DEMO{seed:03d}%"))).all())
        first_id = (s.scalar(select(func.max(Procedure.id))) or 0) + 1
    patients["id"] = np.array([ids[m] for m in mrns])

    writer = _Writer(engine)
    tick = _progress(progress, n)
    now = utcnow()
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        columns, levels = _chunk(rng, first_id + lo, hi - lo, ref, patients, start, end, now)
        with write_session(engine) as s:
            writer.write(s, columns, levels)
            record_event(s, actor=DEMO_ACTOR, action=AuditAction.BULK_CREATE,
                         entity="procedure", entity_id=f"{first_id + lo}-{first_id + hi - 1}",
                         after={"records": hi - lo, "seed": seed}, reason="demo data")
        tick(hi)
    if engine.dialect.name == "postgresql":  # fresh statistics, or the planner guesses badly
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE procedure, procedure_level, patient")
    return {"procedures": n, "patients": n_patients, "seed": seed,
            "first_record_id": first_id, "last_record_id": first_id + n - 1,
            "from": start.date().isoformat(), "to": end.date().isoformat()}


def _progress(progress: bool | ProgressFn, total: int) -> ProgressFn:
    if callable(progress):
        return progress
    if not progress:
        return lambda done, total_=total: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="records", desc="demo data", leave=True)

    def tick(done: int, _total: int = total) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return tick


def _insert_patients(engine: Engine, mrns: list[str], pseudonyms: list[str]) -> None:
    """Insert the demo patients that are not there yet (a seed run again reuses its patients,
    and a larger run of the same seed adds only the new ones)."""
    prefix = mrns[0][:7]  # "DEMO" + the seed: every MRN of this seed
    with read_session(engine) as s:
        existing = set(s.scalars(select(Patient.mrn).where(Patient.mrn.like(f"{prefix}%"))))
    missing = [(m, p) for m, p in zip(mrns, pseudonyms, strict=True) if m not in existing]
    now = utcnow()
    step = CHUNK * 2
    for lo in range(0, len(missing), step):
        with write_session(engine) as s:
            s.connection().execute(Patient.__table__.insert(), [
                {"mrn": m, "pseudonym": p, "created_at": now} for m, p in missing[lo:lo + step]])


class _Writer:
    """Writes column lists with the driver's fastest bulk path: executemany of tuples on
    SQLite (the same call a hand-written loader would make), COPY on PostgreSQL."""

    def __init__(self, engine: Engine):
        self.dialect = engine.dialect.name
        self.proc_cols = [c.name for c in Procedure.__table__.columns]
        self.level_cols = [c.name for c in ProcedureLevel.__table__.columns]

    def write(self, session: Any, columns: dict[str, list[Any]],
              levels: dict[str, list[Any]]) -> None:
        conn = session.connection()
        if self.dialect == "postgresql":
            self._copy(conn, "procedure", self.proc_cols, columns)
            self._copy(conn, "procedure_level", self.level_cols, levels)
            return
        if self.dialect == "sqlite":
            columns["performed_at"] = [_sqlite_datetime(v) for v in columns["performed_at"]]
            for key in ("created_at", "updated_at"):  # one value per chunk: convert it once
                stamp = _sqlite_datetime(columns[key][0])
                columns[key] = [stamp] * len(columns[key])
        self._executemany(conn, "procedure", self.proc_cols, columns)
        self._executemany(conn, "procedure_level", self.level_cols, levels)

    def _executemany(self, conn: Any, table: str, names: list[str],
                     columns: dict[str, list[Any]]) -> None:
        marks = ", ".join("?" if self.dialect == "sqlite" else "%s" for _ in names)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
        conn.exec_driver_sql(sql, list(zip(*(columns[c] for c in names), strict=True)))

    @staticmethod
    def _copy(conn: Any, table: str, names: list[str], columns: dict[str, list[Any]]) -> None:
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in zip(*(columns[c] for c in names), strict=True):
                copy.write_row(row)


def _sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores (UTC, naive), so reads parse it back."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pick(mask: np.ndarray, yes: Any, no: Any) -> list[Any]:
    return np.where(mask, np.asarray(yes, dtype=object), np.asarray(no, dtype=object)).tolist()


def _chunk(rng: np.random.Generator, first_id: int, n: int, ref: dict[str, Any],
           patients: dict[str, np.ndarray], start: datetime, end: datetime,
           now: datetime) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Sample `n` records as columns. Every draw is vectorised; only the level lists and the
    JSON warnings are built per row."""
    catalog = ref["catalog"]
    codes = list(MIX)
    entries = [catalog.entries[c] for c in codes]
    code_i = rng.choice(len(codes), size=n, p=np.array(list(MIX.values())))
    code = np.array(codes, dtype=object)[code_i]
    room_i = rng.integers(0, len(ROOMS), n)
    phys_i = rng.integers(0, len(PHYSICIANS), n)
    tech_i = rng.integers(0, len(TECHNOLOGISTS), n)
    pat_i = rng.integers(0, len(patients["id"]), n)
    u = rng.random((12, n))
    noise = rng.multivariate_normal([0, 0], [[0.36, 0.2], [0.2, 0.49]], size=n).T
    ids = np.arange(first_id, first_id + n)

    # Region: by-level types draw cervical/thoracic/lumbar (some lumbosacral TFESI at S1).
    region = np.array([e.region.value for e in entries], dtype=object)[code_i]
    by_level = region == "by_level"
    share = np.array([REGION_SHARE.get(c, (0, 0, 1)) for c in codes])[code_i]
    drawn = np.where(u[0] < share[:, 0], "cervical",
                     np.where(u[0] < share[:, 0] + share[:, 1], "thoracic", "lumbar"))
    drawn = np.where((code == "TFESI") & (drawn == "lumbar") & (u[1] < 0.06), "sacral", drawn)
    region = np.where(by_level, drawn, region).astype(object)

    # Levels: count from the per-type distribution, then a window of adjacent levels.
    n_levels = np.zeros(n, dtype=int)
    for c, (counts, probs) in LEVEL_COUNTS.items():
        mask = code == c
        n_levels[mask] = np.array(counts)[np.searchsorted(np.cumsum(probs), u[2][mask],
                                                          side="right").clip(0, len(counts) - 1)]
    level_lists: list[tuple[str, ...]] = []
    windows_cache: dict[tuple[str, str, int], list[tuple[str, ...]]] = {}
    for c, r, k, draw in zip(code.tolist(), region.tolist(), n_levels.tolist(), u[3].tolist(),
                             strict=True):
        if k == 0:
            level_lists.append(())
            continue
        key = (c, r, k)
        options = windows_cache.get(key)
        if options is None:
            options = windows_cache[key] = _level_windows(c, r, k)
        level_lists.append(options[int(draw * len(options))])
    count = np.array([len(x) for x in level_lists])

    # Dose: typical x room x physician x body size x levels x correlated log-normal noise.
    typical_kap = np.array([e.typical_dap_gycm2 or 1.0 for e in entries])[code_i]
    typical_time = np.array([e.typical_time_s or 60.0 for e in entries])[code_i]
    doc_kap = np.array([p.dose_factor for p in PHYSICIANS])[phys_i]
    doc_time = np.array([p.time_factor for p in PHYSICIANS])[phys_i]
    room_kap = np.array([r.dose_factor for r in ROOMS])[room_i]
    size = (patients["weight"][pat_i] / 80.0) ** 1.3
    level_factor = 1.0 + 0.35 * np.maximum(0, count - 1)
    dsa = (code == "TFESI") & (u[3] < 0.08)
    kap = typical_kap * room_kap * doc_kap * size * level_factor * np.exp(noise[0])
    kap *= np.where(dsa, 2.5, 1.0)
    time_s = typical_time * doc_time * level_factor * np.exp(noise[1])
    big = (code == "OTHER") & (u[4] < 0.04)  # long non-spine work, above the SRDLs
    kap = np.where(big, kap * 60, kap)
    time_s = np.where(big, np.maximum(time_s * 30, 3700), time_s)
    time_s = np.round(np.minimum(time_s, 5 * 3600), 1)
    unit = np.array([r.unit for r in ROOMS], dtype=object)[room_i]
    factor = np.array([dap_factor(DapUnit(r.unit)) for r in ROOMS])[room_i]
    dap_value = np.round(kap / factor, 2)
    kap = dap_value * factor
    kerma = np.round(kap / (120 * np.exp(noise[0] * 0.3)) * 1000, 2)
    k = np.array([ref["settings"].effective_dose_k[r] for r in region.tolist()])
    correction = np.array([r.kap_correction for r in ROOMS])[room_i]

    # Contrast: policy, the physician's habit, contraindications.
    policy = np.array([e.contrast_policy.value for e in entries], dtype=object)[code_i]
    omit = np.array([p.omit_contrast for p in PHYSICIANS])[phys_i]
    confirmation = np.select(
        [(policy == "required") & (u[6] < 0.03), (policy == "required") & (u[7] < omit),
         policy == "required", (policy == "recommended") & (u[7] < 0.6),
         policy == "recommended"],
        ["contraindicated", "not_confirmed", "confirmed", "confirmed", "not_confirmed"],
        "not_required").astype(object)
    confirmed = confirmation == "confirmed"
    contraindicated = confirmation == "contraindicated"
    reason = np.array(["allergy", "renal_impairment", "patient_refused", "other"],
                      dtype=object)[np.searchsorted([0.6, 0.85, 0.95], u[8])]
    second = np.where((code == "ILESI") & (u[9] < 0.5), "AP;CLO", "AP;LAT")
    views = np.where(u[9] > 0.93, "AP", second).astype(object)
    agent_used = confirmed | ((confirmation == "not_confirmed") & (u[6] > 0.5))
    agent = np.array(DEMO_AGENTS, dtype=object)[(u[0] * 3).astype(int)]
    tfesi_confirmed = (code == "TFESI") & confirmed
    uptake = tfesi_confirmed & (u[10] < np.where(region == "cervical", 0.2, 0.1))
    realtime = np.where(code == "TFESI", u[1] < 0.92, u[1] < 0.5)
    injectate = np.array([DEFAULT_INJECTATE[c] for c in codes], dtype=object)[code_i]
    injectate = np.where((code == "TFESI") & (region == "lumbar") & (u[11] > 0.75),
                         "triamcinolone", injectate)
    injectate = np.where((code == "TFESI") & (region == "cervical") & (u[5] < 0.03),
                         "methylprednisolone", injectate)  # the safety flag to be caught
    pulsed = u[4] < np.array([p.pulsed_rate for p in PHYSICIANS])[phys_i]
    low_dose = u[11] < np.array([p.low_dose_rate for p in PHYSICIANS])[phys_i]
    female = patients["sex"][pat_i] == "F"
    lateral = np.array([e.laterality_required for e in entries])[code_i]
    side = np.array(["left", "right", "bilateral"], dtype=object)[(u[3] * 3).astype(int) % 3]
    max_levels = np.array([e.max_levels or 99 for e in entries])[code_i]
    days = rng.integers(0, max(1, (end - start).days), n)
    minutes = rng.integers(13 * 60, 23 * 60, n)  # 08:00-18:00 US Eastern, in UTC
    performed = [start + timedelta(days=int(d), minutes=int(m))
                 for d, m in zip(days.tolist(), minutes.tolist(), strict=True)]
    warnings = _pick(count > max_levels, json.dumps([{"field": "levels", "message": "more "
                     "levels than the catalog allows per session (confirmed)"}]), None)
    high = kap >= 40 * typical_kap
    warnings = [w if not h else json.dumps([{"field": "dap_value", "message": "KAP over 40x the "
                "usual (confirmed)"}]) for w, h in zip(warnings, high.tolist(), strict=True)]
    room_ids = np.array([r for r, _ in ref["rooms"]])[room_i]
    site_ids = np.array([s for _, s in ref["rooms"]])[room_i]
    none: list[Any] = [None] * n
    volume = np.round(0.5 + u[6] * 2.5, 1)
    columns: dict[str, list[Any]] = {
        "id": ids.tolist(), "status": ["final"] * n, "version": [1] * n,
        "performed_at": performed, "site_id": site_ids.tolist(), "room_id": room_ids.tolist(),
        "physician_id": np.array(ref["physicians"])[phys_i].tolist(),
        "technologist_id": np.array(ref["techs"])[tech_i].tolist(),
        "patient_id": patients["id"][pat_i].tolist(),
        "accession_number": [f"A{i:09d}" for i in ids.tolist()],
        "patient_sex": patients["sex"][pat_i].tolist(),
        "patient_weight_kg": patients["weight"][pat_i].tolist(),
        "pregnancy_status": _pick(female, np.where(u[9] > 0.002, "not_pregnant", "pregnant"),
                                  "not_applicable"),
        "procedure_type_id": np.array([e.id for e in entries])[code_i].tolist(),
        "region": region.tolist(),
        "laterality": _pick(lateral, side, np.where(code == "ILESI", "midline", None)),
        "guidance": _pick(dsa, "fluoroscopy_dsa", "fluoroscopy"),
        "fluoro_time_s": time_s.tolist(), "fluoro_time_entered": time_s.astype(str).tolist(),
        "dap_gycm2": kap.tolist(), "dap_value": dap_value.tolist(), "dap_unit": unit.tolist(),
        "dap_missing_reason": none, "air_kerma_mgy": kerma.tolist(),
        "saved_images": np.where(u[8] > 0.985, 0, 1 + (u[10] * 4).astype(int)).tolist(),
        "dsa_runs": _pick(dsa, 1 + (u[5] * 2).astype(int), None),
        "pulsed_fluoro": pulsed.tolist(),
        "pulse_rate_pps": _pick(pulsed, np.array([4.0, 8.0, 15.0])[(u[2] * 3).astype(int)],
                                None),
        "low_dose_mode": low_dose.tolist(),
        "contrast_agent": _pick(agent_used, agent, None),
        "contrast_volume_ml": _pick(agent_used, volume, None),
        "contrast_confirmation": confirmation.tolist(),
        "contrast_exception_reason": _pick(contraindicated, reason, None),
        "contrast_exception_detail": _pick(contraindicated & (reason == "other"),
                                           "patient anxious about contrast", None),
        "confirmation_views": _pick(confirmed, views, None),
        "realtime_contrast": _pick(confirmed, realtime, None),
        "vascular_uptake": _pick(tfesi_confirmed, uptake, None),
        "needle_repositioned": _pick(tfesi_confirmed, uptake & (u[11] < 0.93), None),
        "injectate": injectate.tolist(), "notes": none, "dose_source": ["manual"] * n,
        "effective_dose_msv": effective_doses(kap, correction, k).tolist(),
        "warnings": warnings, "void_reason": none,
        "created_at": [now] * n, "created_by": [DEMO_ACTOR] * n,
        "updated_at": [now] * n, "updated_by": [DEMO_ACTOR] * n,
    }
    level_columns: dict[str, list[Any]] = {"procedure_id": [], "position": [], "level": [],
                                           "region": []}
    for record_id, treated in zip(ids.tolist(), level_lists, strict=True):
        for position, level in enumerate(treated, start=1):
            level_columns["procedure_id"].append(record_id)
            level_columns["position"].append(position)
            level_columns["level"].append(level)
            level_columns["region"].append(level_region(level).value)
    return columns, level_columns


DEFAULT_INJECTATE = {
    "TFESI": "dexamethasone", "ILESI": "triamcinolone", "CAUDAL": "triamcinolone",
    "MBB": "local_anesthetic_only", "RFA": "local_anesthetic_only",
    "FACET": "methylprednisolone", "SIJ": "triamcinolone", "SYMPATHETIC": "local_anesthetic_only",
    "DISCOGRAPHY": "none", "OTHER": "other",
}
