"""Reference levels by ICRP 135 and domain figures corrected and sourced (issue 11).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

Seeds two settings, each with ICRP Publication 135 as its source: drl_min_rooms (10) and
drl_min_room_records (20). Below them a facility reports typical values, not DRLs
(docs/reference.md §12).

Corrects figures the first release seeded wrong (docs/reference.md §5, §7, §8, §17), in existing
installations too. A row is changed only while it still holds the value first seeded: a value an
administrator has changed since is theirs, and is left alone.

- catalog ILESI typical time 25 s -> 18 s (McCormick, Pain Med 2016: mean 18 ± 10 s, n = 366);
- catalog MBB: its 40 s and 0.9 Gy·cm² were credited to Choi 2016, which pools lumbar root,
  MBB and facet blocks; both stay, now labelled estimates (40 s lies between Bakır 2024's
  lumbar MBB means, 28 s AP and 46 s oblique, unverified beyond the abstract);
- catalog MBB, RFA, FACET max_levels 4 -> 2 (Medicare facet joint intervention LCDs);
- every seeded catalog row's typical_source now cites the paper and the number each figure
  takes, or says it is an estimate or local policy;
- published values: Cushman, Spine J 2016 sample size 1548 (patients) -> 2443 (injections);
  the notes of the Choi 2016 rows say they are pooled, those of Zhou 2005 that it is dated;
  Bakır 2024's two MBB times are added (for comparison only);
- setting effective_dose_k: its source states the ICRP 60 basis of the lumbar factor and that
  the other factors are estimates with no source.

Data only: the schema does not change. No audit events are written (the trail's key is not the
migration's to use); docs/reference.md §17 records what changed.
"""
from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from audit.storage.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ICRP_135 = "ICRP Publication 135 (2017), Diagnostic reference levels in medical imaging"
_SETTINGS = [
    ("drl_min_rooms", 10,
     f"{_ICRP_135}: a local DRL is the 75th percentile of room medians over a reasonable number "
     "of rooms (10-20 given as an example, glossary 'local DRL'); with fewer rooms the median "
     "of the pooled distribution is a typical value (glossary 'typical value')"),
    ("drl_min_room_records", 20,
     f"{_ICRP_135}: a room's median needs a minimum patient sample; 20 is the smallest minimum "
     "ICRP 135 gives for a survey (more is preferred for fluoroscopy; the paragraph and the "
     "figure for interventional work were not checked against the primary text)"),
]

_K_OLD = "mSv per Gy·cm²; lumbar: Kim S, AJR 2009 (mobile C-arm phantom); others unverified"
_K_NEW = ("mSv per Gy·cm² (effective dose estimates): lumbar 0.33 from Kim S, AJR 2009 (one "
          "male phantom, mobile C-arm, ICRP 60 tissue weights, not recomputed for ICRP 103); "
          "cervical 0.08, thoracic 0.20, sacral 0.26, other 0.26: estimates, no published "
          "source found")

_KIM = "Kim SJ, J Spinal Disord Tech 2014"
_ZHOU = "Zhou, Pain Physician 2005"
_ESI_LCD = "Medicare ESI LCD L33906 and its articles"
_FACET_LCD = "Medicare facet joint intervention LCDs (L38803, L38765, L38841, L34892)"
_LOCAL_TIME = "max time: local policy"
_KIM_OLD = "Kim SJ, J Spinal Disord Tech 2014 (median of 181 lumbosacral TFESI / 47 caudal)"
# code -> (typical_source as first seeded, typical_source now)
_SOURCES = {
    "ILESI": ("time: McCormick, Pain Med 2016 (cervical ILESI mean 18 s); KAP estimated",
              "time 18 s: McCormick, Pain Med 2016 (cervical ILESI mean 18 ± 10 s, n = 366); "
              f"KAP 0.6: estimate, no published figure found; max levels 1: {_ESI_LCD}; "
              f"{_LOCAL_TIME}"),
    "TFESI": (_KIM_OLD,
              f"time 29 s: {_KIM} (lumbosacral TFESI median, n = 181); KAP 0.68: {_KIM} "
              f"(median, n = 181); max levels 2: {_ESI_LCD}; {_LOCAL_TIME}"),
    "CAUDAL": (_KIM_OLD,
               f"time 13 s: {_KIM} (caudal ESI median, n = 47); KAP 0.55: {_KIM} (median, "
               f"n = 47); max levels 1: {_ESI_LCD}; {_LOCAL_TIME}"),
    "MBB": ("Choi, JKMS 2016 (lumbar root, MBB, facet blocks; physician-operated C-arm); "
            "estimated",
            "time 40 s: estimate, between Bakır 2024's lumbar MBB means of 28 s (AP) and 46 s "
            "(oblique), PMID 39337962, unverified beyond the abstract; KAP 0.9: estimate, no "
            "published MBB figure found (Choi, JKMS 2016 pools root, MBB and facet blocks); "
            f"max levels 2: {_FACET_LCD}; {_LOCAL_TIME}"),
    "RFA": ("estimated from Zhou, Pain Physician 2005 (facet procedures)",
            f"time 90 s: estimate scaled from {_ZHOU} (facet procedures mean 81.5 s); KAP 2.0: "
            f"estimate, no published figure found; max levels 2: {_FACET_LCD}; "
            f"{_LOCAL_TIME}"),
    "FACET": ("time: Zhou, Pain Physician 2005 (mean); KAP estimated",
              f"time 81.5 s: {_ZHOU} (facet injections mean; 165 cases in all, dated); KAP "
              f"1.5: estimate, no published figure found; max levels 2: {_FACET_LCD}; "
              f"{_LOCAL_TIME}"),
    "SIJ": ("KAP: Cushman, PM&R 2016 (median, middle BMI); time: Zhou 2005",
            f"time 50.6 s: {_ZHOU} (SIJ mean; dated); KAP 1.67: Cushman, PM&R 2016 (median, "
            "middle BMI category, n = 453); max levels 2: local policy; "
            f"{_LOCAL_TIME}"),
    "DISCOGRAPHY": ("time: Zhou, Pain Physician 2005 (mean); KAP estimated",
                    f"time 146.8 s: {_ZHOU} (discography mean; dated); KAP 3.0: estimate, no "
                    f"published figure found; max levels 4: local policy; {_LOCAL_TIME}"),
    "SYMPATHETIC": ("time: Zhou, Pain Physician 2005 (mean); KAP estimated",
                    f"time 64.4 s: {_ZHOU} (sympathetic blocks mean; dated); KAP 1.5: "
                    "estimate, no published figure found; max levels 2: local policy; "
                    f"{_LOCAL_TIME}"),
    "OTHER": ("estimated; non-spine work varies widely",
              "time 120 s and KAP 10: estimates, no published figure (non-spine work varies "
              "widely)"),
}
# (code, column, first seeded, now)
_VALUES = [
    ("ILESI", "typical_time_s", 25.0, 18.0),
    ("MBB", "max_levels", 4, 2),
    ("RFA", "max_levels", 4, 2),
    ("FACET", "max_levels", 4, 2),
]

_CUSHMAN = "Cushman, Spine J 2016"
_CHOI = "Choi, JKMS 2016"
_POOLED = "; pooled over root, MBB and facet blocks, not specific to this procedure"
_DATED = "; 165 cases in all, one teaching hospital, pulsed mode in < 10%: dated"
_BAKIR = "Bakır 2024 (PMID 39337962)"
_BAKIR_ROWS = [
    (28.0, "lumbar MBB, AP approach; unverified beyond the abstract"),
    (46.0, "lumbar MBB, oblique approach; unverified beyond the abstract"),
]

_setting = sa.table("setting", sa.column("key"), sa.column("value", sa.JSON),
                    sa.column("source"), sa.column("updated_at", UTCDateTime()),
                    sa.column("updated_by"))
_catalog = sa.table("procedure_type", sa.column("id"), sa.column("code"),
                    sa.column("typical_time_s"), sa.column("max_levels"),
                    sa.column("typical_source"))
_levels = sa.table("reference_level", sa.column("id"), sa.column("procedure_type_id"),
                   sa.column("quantity"), sa.column("kind"), sa.column("statistic"),
                   sa.column("value"), sa.column("sample_size"), sa.column("source"),
                   sa.column("note"), sa.column("active"), sa.column("created_by"),
                   sa.column("effective_from", sa.Date()),
                   sa.column("created_at", UTCDateTime()))


def _type_id(code: str) -> sa.ScalarSelect[int]:
    return sa.select(_catalog.c.id).where(_catalog.c.code == code).scalar_subquery()


def _catalog_values(forward: bool) -> None:
    for code, column, old, new in _VALUES:
        before, after = (old, new) if forward else (new, old)
        op.execute(_catalog.update()
                   .where(_catalog.c.code == code, _catalog.c[column] == before)
                   .values({column: after}))
    for code, (old, new) in _SOURCES.items():
        before, after = (old, new) if forward else (new, old)
        op.execute(_catalog.update()
                   .where(_catalog.c.code == code, _catalog.c.typical_source == before)
                   .values(typical_source=after))


def _published(forward: bool) -> None:
    cushman = _levels.c.source == _CUSHMAN
    op.execute(_levels.update().where(cushman, _levels.c.sample_size == (1548 if forward
                                                                          else 2443))
               .values(sample_size=2443 if forward else 1548))
    for source, suffix in ((_CHOI, _POOLED), (_ZHOU, _DATED)):
        rows = op.get_bind().execute(sa.select(_levels.c.id, _levels.c.note)
                                     .where(_levels.c.source == source)).all()
        for row_id, note in rows:
            text = note or ""
            if forward and not text.endswith(suffix):
                text += suffix
            elif not forward and text.endswith(suffix):
                text = text[: -len(suffix)]
            else:
                continue
            op.execute(_levels.update().where(_levels.c.id == row_id).values(note=text))
    if forward:
        now = datetime.now(UTC)
        for value, note in _BAKIR_ROWS:
            op.execute(_levels.insert().values(
                procedure_type_id=_type_id("MBB"), quantity="fluoro_time_s", kind="published",
                statistic="mean", value=value, sample_size=None, source=_BAKIR, note=note,
                effective_from=date(2024, 1, 1), active=True, created_at=now,
                created_by="system"))
    else:
        op.execute(_levels.delete().where(_levels.c.source == _BAKIR,
                                          _levels.c.created_by == "system"))


def upgrade() -> None:
    now = datetime.now(UTC)
    present = set(op.get_bind().execute(sa.select(_setting.c.key)).scalars())
    op.bulk_insert(_setting, [
        {"key": key, "value": value, "source": source, "updated_at": now,
         "updated_by": "system"}
        for key, value, source in _SETTINGS if key not in present])
    op.execute(_setting.update().where(_setting.c.key == "effective_dose_k",
                                       _setting.c.source == _K_OLD).values(source=_K_NEW))
    _catalog_values(forward=True)
    _published(forward=True)


def downgrade() -> None:
    _published(forward=False)
    _catalog_values(forward=False)
    op.execute(_setting.update().where(_setting.c.key == "effective_dose_k",
                                       _setting.c.source == _K_NEW).values(source=_K_OLD))
    op.execute(_setting.delete().where(_setting.c.key.in_([k for k, _, _ in _SETTINGS])))
