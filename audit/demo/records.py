"""One chunk of demo records as columns: what each record is (type, region, levels, room,
physician, technologist, patient, date), how contrast was handled, and its dose from
audit.demo.distributions.

What the records are built to show (so the dashboards have something true to find):
- rooms with different dose levels, so local DRLs differ from achievable doses;
- physicians with habits (audit.demo.cast): one high-dose outlier on a small share of the
  cases, one who often omits contrast confirmation, different use of pulsed and low-dose modes;
- dose rising with body size (weight), with the number of levels treated and with DSA runs;
- contraindications with reasons, vascular uptake in TFESI (more in cervical) mostly followed by
  repositioning, a few particulate steroids in cervical TFESI, a few sessions over the level
  limit;
- the planted outliers of audit.demo.distributions, each with its note.

Every draw is vectorised with numpy; only the level lists, the notes and the JSON warnings are
built per row.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from audit.demo import case_mix, pathways
from audit.demo.cast import DEMO_ACTOR, PHYSICIANS, ROOMS, TECHNOLOGISTS
from audit.demo.distributions import OUTLIER, SRDL, draw_doses, plant
from audit.dosimetry import effective_doses
from audit.units import dap_factor
from audit.vocab import CONTRAST_AGENTS, SEGMENTS, DapUnit, Region, level_region

# code: (share, weight of levels choice) — mix of a busy interventional pain practice.
MIX = {"TFESI": 0.28, "ILESI": 0.15, "MBB": 0.14, "RFA": 0.10, "SIJ": 0.10, "CAUDAL": 0.06,
       "FACET": 0.07, "SYMPATHETIC": 0.03, "DISCOGRAPHY": 0.02, "OTHER": 0.05}
LEVEL_COUNTS = {"TFESI": ([1, 2, 3], [0.61, 0.37, 0.02]), "ILESI": ([1], [1.0]),
                "MBB": ([1, 2, 3], [0.35, 0.58, 0.07]), "RFA": ([1, 2, 3], [0.35, 0.58, 0.07]),
                "FACET": ([1, 2, 3], [0.45, 0.5, 0.05]),
                "DISCOGRAPHY": ([2, 3, 4], [0.3, 0.5, 0.2]), "SYMPATHETIC": ([1], [1.0]),
                "SIJ": ([1], [1.0])}
REGION_SHARE = {  # (cervical, thoracic, lumbar) for by-level types
    "TFESI": (0.12, 0.03, 0.85), "ILESI": (0.25, 0.05, 0.70), "MBB": (0.2, 0.05, 0.75),
    "RFA": (0.2, 0.05, 0.75), "FACET": (0.15, 0.05, 0.80), "DISCOGRAPHY": (0.1, 0.0, 0.9),
    "SYMPATHETIC": (0.3, 0.0, 0.7),
}


def _level_factor(count: np.ndarray) -> np.ndarray:
    """Dose grows with the levels treated: +35% per level after the first."""
    return 1.0 + 0.35 * np.maximum(0, np.asarray(count) - 1)


#: Each type's mean level factor: dividing by it keeps the type's median dose on the published
#: one (which was measured on that type's usual mix of levels), so an MBB at 2-4 levels is not
#: centred 60% above the published MBB.
LEVEL_NORM = {c: float(np.dot(LEVEL_COUNTS[c][1], _level_factor(np.array(LEVEL_COUNTS[c][0]))))
              if c in LEVEL_COUNTS else 1.0 for c in MIX}
#: The agents demo records use: the three iodinated ones the entry form lists first.
DEMO_AGENTS = CONTRAST_AGENTS[:3]


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
        if region == "cervical" and code == "ILESI":  # C7-T1 preferred, C6-C7 at least
            pool = ["C7-T1"] * 5 + ["C6-C7"] * 4 + ["C5-C6"]  # (Rathmell 2015; mix estimated)
    count = min(count, len(set(pool)))
    windows = [tuple(pool[i:i + count]) for i in range(len(pool) - count + 1)]
    return [w for w in windows if len(set(w)) == len(w)] or [tuple(pool[:1])]


def _pick(mask: np.ndarray, yes: Any, no: Any) -> list[Any]:
    return np.where(mask, np.asarray(yes, dtype=object), np.asarray(no, dtype=object)).tolist()


def build_chunk(rng: np.random.Generator, first_id: int, n: int, ref: dict[str, Any],
                patients: dict[str, np.ndarray], start: datetime, end: datetime,
                now: datetime, kinds: np.ndarray | None = None,
                ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Sample `n` records as columns of `procedure` and `procedure_level`. `kinds` says which
    are planted (audit.demo.distributions.planted_kinds; none when omitted)."""
    catalog = ref["catalog"]
    codes = list(MIX)
    entries = [catalog.entries[c] for c in codes]
    kinds = np.zeros(n, dtype=np.int8) if kinds is None else kinds
    code_i = rng.choice(len(codes), size=n, p=np.array(list(MIX.values())))
    other = codes.index("OTHER")
    spine_mix = np.array([0.0 if c == "OTHER" else MIX[c] for c in codes])
    spine_i = rng.choice(len(codes), size=n, p=spine_mix / spine_mix.sum())
    code_i = np.where((kinds == OUTLIER) & (code_i == other), spine_i, code_i)  # spine ones
    code_i = np.where(kinds == SRDL, other, code_i)  # SRDL work is non-spine
    code = np.array(codes, dtype=object)[code_i]
    room_i = rng.integers(0, len(ROOMS), n)
    shares = np.array([p.share for p in PHYSICIANS])
    phys_i = rng.choice(len(PHYSICIANS), size=n, p=shares / shares.sum())
    tech_i = rng.integers(0, len(TECHNOLOGISTS), n)
    pat_i = rng.integers(0, len(patients["id"]), n)
    pat_i = case_mix.heavier_patients(first_id, pat_i, np.array(
        [p.name for p in PHYSICIANS], dtype=object)[phys_i], patients["weight"])
    u = rng.random((12, n))
    ids = np.arange(first_id, first_id + n)

    # Region: by-level types draw cervical/thoracic/lumbar (some lumbosacral TFESI at S1).
    region = np.array([e.region.value for e in entries], dtype=object)[code_i]
    by_level = region == "by_level"
    share = np.array([REGION_SHARE.get(c, (0, 0, 1)) for c in codes])[code_i]
    drawn = np.where(u[0] < share[:, 0], "cervical",
                     np.where(u[0] < share[:, 0] + share[:, 1], "thoracic", "lumbar"))
    drawn = np.where((code == "TFESI") & (drawn == "lumbar") & (u[1] < 0.06), "sacral", drawn)
    region = np.where(by_level, drawn, region).astype(object)

    # Courses of treatment: who, by whom, where and when (audit.demo.pathways).
    n_days = max(1, (end - start).days)
    names = [p.name for p in PHYSICIANS]
    course = pathways.arrange(first_id, code, region, pat_i, phys_i, names,
                              patients["weight"], n_days)
    pat_i, phys_i, region = course.patient, course.physician, course.region

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

    # Dose: the type's median x room x physician x body size x levels x DSA, with correlated
    # log-normal noise, squeezed under the caps; then the planted outliers.
    doc_kap = np.array([p.dose_factor for p in PHYSICIANS])[phys_i]
    doc_time = np.array([p.time_factor for p in PHYSICIANS])[phys_i]
    room_kap = np.array([r.dose_factor for r in ROOMS])[room_i]
    size = (patients["weight"][pat_i] / 80.0) ** 1.3
    level_factor = _level_factor(count) / np.array([LEVEL_NORM[c] for c in codes])[code_i]
    dsa = (code == "TFESI") & (u[3] < 0.08)
    mix = case_mix.draw(first_id, code, kinds != 0)
    kap_factor = (room_kap * doc_kap * size * level_factor * np.where(dsa, 2.5, 1.0)
                  * mix.kap_factor)
    time_s, kap, area = draw_doses(rng, code, kap_factor,
                                   doc_time * level_factor * mix.time_factor)
    time_s, kap, area, notes = plant(rng, kinds, code, time_s, kap, area)
    time_s = np.round(time_s, 1)
    unit = np.array([r.unit for r in ROOMS], dtype=object)[room_i]
    factor = np.array([dap_factor(DapUnit(r.unit)) for r in ROOMS])[room_i]
    dap_value = np.round(kap / factor, 2)
    kap = dap_value * factor
    kerma = np.round(kap * 1000 / area, 2)
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
    injectate = np.where((code == "TFESI") & (region == "cervical") & (u[5] < 0.03),
                         "methylprednisolone", injectate)  # the safety flag to be caught
    pulsed = u[4] < np.array([p.pulsed_rate for p in PHYSICIANS])[phys_i]
    low_dose = u[11] < np.array([p.low_dose_rate for p in PHYSICIANS])[phys_i]
    female = patients["sex"][pat_i] == "F"
    lateral = np.array([e.laterality_required for e in entries])[code_i]
    side = np.array(["left", "right", "bilateral"], dtype=object)[(u[3] * 3).astype(int) % 3]
    max_levels = np.array([e.max_levels or 99 for e in entries])[code_i]
    days = rng.integers(0, n_days, n)
    days = np.where(course.day >= 0, course.day, days)
    injectate = np.where(pathways.particulate_first(code, region, pat_i, days, phys_i, names,
                                                    u[11]), "triamcinolone", injectate)
    minutes = rng.integers(13 * 60, 23 * 60, n)  # 08:00-18:00 US Eastern, in UTC
    performed = [start + timedelta(days=int(d), minutes=int(m))
                 for d, m in zip(days.tolist(), minutes.tolist(), strict=True)]
    warnings = _pick(count > max_levels, json.dumps([{"field": "levels", "message": "more "
                     "levels than the catalog allows per session (confirmed)"}]), None)
    typical_kap = np.array([e.typical_dap_gycm2 or 1.0 for e in entries])[code_i]
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
        "injectate": injectate.tolist(), "notes": notes, "dose_source": ["manual"] * n,
        "effective_dose_msv": effective_doses(kap, correction, k).tolist(),
        "warnings": warnings, "void_reason": none,
        "created_at": [now] * n, "created_by": [DEMO_ACTOR] * n,
        "updated_at": [now] * n, "updated_by": [DEMO_ACTOR] * n,
    }
    height = patients["height"] if "height" in patients else case_mix.heights(
        first_id, patients["sex"])
    case_mix.fill(columns, mix, code, height[pat_i])
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
