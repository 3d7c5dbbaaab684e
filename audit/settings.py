"""Settings: thresholds and site configuration, each with its source, every change audited.

The values live in the ``setting`` table (seeded by the migrations, each row with its source, so
an auditor can see where a threshold came from, and changed only through :func:`update_setting`,
which audits the change). Code reads them as one typed :class:`Settings` object, so a key is
spelled once, a misspelt key fails at once, and each default is written in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from audit.auth import Actor, Permission, require
from audit.dosimetry import DEFAULT_ANNUAL_BACKGROUND_MSV
from audit.errors import FieldError, NotFound, ValidationFailed
from audit.storage.engine import write_session
from audit.storage.models import Setting, utcnow
from audit.trail import record_event
from audit.vocab import AuditAction

#: Settings never shown or exported. The pseudonym key was one until migration 0006 moved it to
#: the key directory (audit.keys); an older database read mid-upgrade still hides it.
SECRET_KEYS = frozenset({"pseudonym_secret"})


_EFFECTIVE_DOSE_K: Mapping[str, float] = {
    "cervical": 0.08, "thoracic": 0.20, "lumbar": 0.33, "sacral": 0.26, "other": 0.26}


@dataclass(frozen=True)
class Settings:
    """Every setting, typed, defaulting to the value the migrations seed.

    Values are taken from the rows as stored (JSON), not coerced: the code that uses a value
    checks it and names the setting when it cannot be used (e.g. a site_timezone that is not a
    time zone), as it always has. A default applies only when a row is missing. Sources quoted
    in the comments are the rows' ``source`` as seeded.
    """

    #: NCRP Report 168; AAPM MPPG 12.a (seeded by migration 0001).
    srdl_air_kerma_mgy: float = 5000
    #: NCRP Report 168 / SIR 2009, assuming a 100 cm² field (0001).
    srdl_kap_gycm2: float = 500
    #: NCRP Report 168 / SIR 2009, 60 min (0001).
    srdl_fluoro_time_s: float = 3600
    #: Local QA choice: the investigation level is the local 99th percentile of the procedure
    #: type's records (about 1 record in 100 per quantity; docs/reference.md §10) (0011).
    investigation_percentile: float = 99
    #: Local QA choice: a type gets an investigation level from 100 records with the quantity
    #: (a 99th percentile of fewer is the largest record or two, not a level) (0011).
    investigation_min_records: int = 100
    #: Local policy: the investigation level is never below 3x the local median (0001; its
    #: source text reworded by 0011, when an administrator had not changed it).
    investigation_factor: float = 3
    #: OpenREM default, 12 weeks (0001).
    cumulative_window_days: float = 84
    #: OpenREM default (0001).
    cumulative_kap_gycm2: float = 200
    #: OpenREM default, 2 Gy (0001).
    cumulative_air_kerma_mgy: float = 2000
    #: mSv per Gy·cm² by region; lumbar: Kim S, AJR 2009 (one phantom, mobile C-arm, ICRP 60
    #: tissue weights); cervical, thoracic, sacral, other: estimates, no source found (source
    #: text corrected by migration 0010; each basis in audit/data/effective_dose_k.csv).
    effective_dose_k: Mapping[str, float] = field(default_factory=lambda: dict(_EFFECTIVE_DOSE_K))
    #: NCRP Report 160 (US); 2.4 worldwide per UNSCEAR (0001).
    annual_background_msv: float = DEFAULT_ANNUAL_BACKGROUND_MSV
    #: Plausibility: a KAP this many times the usual asks for confirmation (0001).
    warning_kap_ratio: float = 40
    #: Local policy: minutes of inactivity before the dashboard signs out (0001).
    session_idle_minutes: float = 30
    #: Manual vs dose report: relative differences over 10% are flagged (0001).
    discrepancy_tolerance: float = 0.10
    #: IANA time zone of the site and its C-arm clocks (seeded by migration 0003).
    site_timezone: str = "UTC"
    #: ICRP Publication 135: a local DRL needs a reasonable number of rooms (10-20 given as an
    #: example), each with its own median; with fewer, the figure is a typical value (seeded by
    #: migration 0010; docs/reference.md §12).
    drl_min_rooms: int = 10
    #: ICRP Publication 135: a room's median counts only over a minimum patient sample (20, the
    #: smallest minimum ICRP 135 gives for a survey; seeded by migration 0010, §12).
    drl_min_room_records: int = 20
    #: Local policy: a record of the same patient and procedure type within this many minutes
    #: of a final record asks "duplicate?" before saving; 0 turns the check off (seeded by
    #: migration 0009).
    duplicate_window_minutes: float = 30
    #: Local choice: `fluoro-audit serve` starts the DICOM receiver beside the dashboard
    #: (seeded by migration 0013, like the three below; audit.dicom_net).
    receiver_enabled: bool = False
    #: DICOM's registered port (IANA 11112).
    receiver_port: int = 11112
    #: The receiver's AE title.
    receiver_ae_title: str = "FLUORO_AUDIT"
    #: Calling AE titles allowed to send (AE_TITLE or AE_TITLE@ADDRESS, separated by spaces or
    #: commas); empty: only loopback peers (audit.dicom_net.access).
    receiver_allowed: str = ""
    #: The patient letter's letterhead and where it sends the patient (seeded empty by
    #: migration 0015; the letter says what to do in general words while they are empty).
    practice_name: str = ""
    practice_contact: str = ""
    images_held_at: str = ""


_KEYS = frozenset(f.name for f in fields(Settings))


def settings_from_rows(rows: Iterable[tuple[str, Any]]) -> Settings:
    """Settings from (key, value) rows; keys no field knows are ignored."""
    return Settings(**{key: value for key, value in rows if key in _KEYS})


def load_settings(session: Session) -> Settings:
    """The current settings, from the ``setting`` rows."""
    return settings_from_rows(session.execute(select(Setting.key, Setting.value)).all())


def load_public_settings(connection: Connection) -> Settings:
    """The settings without the secret ones (their fields keep the empty default): for exports."""
    rows = connection.execute(select(Setting.key, Setting.value)).all()
    return settings_from_rows((k, v) for k, v in rows if k not in SECRET_KEYS)


def list_settings(session: Session) -> list[Setting]:
    """Every setting that may be shown, with its source."""
    return [s for s in session.scalars(select(Setting).order_by(Setting.key))
            if s.key not in SECRET_KEYS]


def _is_number(value: Any) -> bool:
    """A number, and not a yes/no: Python counts True as 1, a setting must not."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def update_setting(engine: Engine, actor: Actor, key: str, value: Any,
                   source: str | None = None) -> None:
    require(actor, Permission.ADMIN)
    if key in SECRET_KEYS:
        raise ValidationFailed([FieldError(key, "this setting cannot be changed here")])
    with write_session(engine) as session:
        setting = session.get(Setting, key)
        if setting is None:
            raise NotFound(f"no setting named {key!r}")
        if type(value) is not type(setting.value) and not (
            _is_number(value) and _is_number(setting.value)
        ):
            raise ValidationFailed([FieldError(
                key, f"expected a value like {setting.value!r}, got {value!r}")])
        before = {"value": setting.value, "source": setting.source}
        setting.value = value
        if source is not None:
            setting.source = source
        setting.updated_at = utcnow()
        setting.updated_by = actor.username
        record_event(session, actor=actor.username, action=AuditAction.SETTING,
                     entity="setting", entity_id=key, before=before,
                     after={"value": value, "source": setting.source})
