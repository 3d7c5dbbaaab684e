"""Who and where the demo data is about: sites, rooms, physicians and technologists whose names
say "demo" at a glance, and the actor the loader writes as.

Why every name says so: the demo once poured its records into a live database under
real-looking accounts, so the technologist jsmith "had" 3,278 records nobody logged, and
records cannot be deleted, only voided. A name like "Demo Riverside Spine Center",
"Dr. Demo Chen" or "demo-tech1" cannot be mistaken for a colleague in any list, filter, report
or export. Patients are "DEMO..." medical record numbers and rooms have "DEMO-" serials.

How demo records are recognised (audit.demo.guard): the loader writes every procedure with
created_by = DEMO_ACTOR ("demo"), which is no account; a database that has a real account named
"demo" gets no such benefit of the doubt (none of its records counts as demo data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from audit.auth import validate_username
from audit.catalog import load_catalog
from audit.settings import load_settings
from audit.storage.engine import write_session
from audit.storage.models import Physician, Room, Site, UserAccount
from audit.trail import record_event
from audit.vocab import AuditAction, Role

#: The audit trail's actor and every demo record's created_by / updated_by.
DEMO_ACTOR = "demo"
#: The reason on every audit event the loader writes.
DEMO_REASON = "demo data"
#: What every demo patient's medical record number starts with (then the seed, then a count).
MRN_PREFIX = "DEMO"


@dataclass(frozen=True)
class DemoRoom:
    site: str
    name: str
    make: str
    model: str
    unit: str  # the DAP unit the C-arm displays (so the demo exercises every conversion)
    dose_factor: float  # multiplies KAP: rooms differ, so local DRLs differ from achievable
    kap_correction: float = 1.0


ROOMS = (
    DemoRoom("Demo Riverside Spine Center", "Demo OR 1", "Ziehm", "Vision RFD", "cGy·cm²", 0.8),
    DemoRoom("Demo Riverside Spine Center", "Demo OR 2", "GE", "OEC 9900 Elite", "Gy·cm²", 1.0),
    DemoRoom("Demo Riverside Spine Center", "Demo Procedure Room 3", "Siemens", "Cios Alpha",
             "µGy·m²", 1.25, 0.75),
    DemoRoom("Demo Northgate Pain Clinic", "Demo Suite A", "Philips", "Zenition 70", "mGy·cm²",
             0.9),
    DemoRoom("Demo Northgate Pain Clinic", "Demo Suite B", "GE", "OEC Elite CFD", "dGy·cm²", 1.1),
)


@dataclass(frozen=True)
class DemoPhysician:
    name: str
    share: float  # of the practice's procedures
    dose_factor: float  # multiplies KAP
    time_factor: float
    omit_contrast: float  # probability of not confirming where contrast is required
    pulsed_rate: float
    low_dose_rate: float


#: The high-dose physician: about 3x KAP and 2x time, on a small share of the cases (a part-time
#: colleague), so he stands out on every dose page without making most alerts his.
HIGH_DOSE_PHYSICIAN = "Dr. Demo Holloway"
#: The physician who often skips contrast confirmation where it is required.
OMITS_CONTRAST = "Dr. Demo Weiss"

PHYSICIANS = (
    DemoPhysician("Dr. Demo Chen", 0.14, 0.8, 0.8, 0.01, 0.95, 0.85),
    DemoPhysician("Dr. Demo Mehta", 0.14, 1.0, 1.0, 0.02, 0.85, 0.6),
    DemoPhysician("Dr. Demo Álvarez", 0.13, 0.9, 1.1, 0.02, 0.9, 0.7),
    DemoPhysician("Dr. Demo O'Connor", 0.13, 1.1, 1.0, 0.03, 0.7, 0.4),
    DemoPhysician(HIGH_DOSE_PHYSICIAN, 0.05, 3.0, 2.0, 0.03, 0.35, 0.15),
    DemoPhysician(OMITS_CONTRAST, 0.13, 1.0, 0.9, 0.35, 0.8, 0.5),
    DemoPhysician("Dr. Demo Mensah", 0.14, 0.95, 1.0, 0.02, 0.9, 0.75),
    DemoPhysician("Dr. Demo Li", 0.14, 1.05, 1.1, 0.02, 0.75, 0.55),
)
#: Technologist accounts: created unable to sign in (a test or a trainer may give one a
#: password to show the app from a technologist's side).
TECHNOLOGISTS = tuple(f"demo-tech{i}" for i in range(1, 7))


def demo_names() -> dict[str, list[str]]:
    """Every name the demo creates, by kind (what tests and the docs check says "demo")."""
    return {"site": sorted({r.site for r in ROOMS}), "room": [r.name for r in ROOMS],
            "physician": [p.name for p in PHYSICIANS], "user_account": list(TECHNOLOGISTS)}


def ensure_cast(engine: Engine) -> dict[str, Any]:
    """Sites, rooms, physicians, technologists: created once (idempotent), ids returned with
    the settings and catalog the records are drawn against."""
    with write_session(engine) as s:
        sites: dict[str, int] = {}
        for site_name in dict.fromkeys(r.site for r in ROOMS):
            site = s.scalar(select(Site).where(Site.name == site_name))
            if site is None:
                site = Site(name=site_name, active=True)
                s.add(site)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE, entity="site",
                             entity_id=site.id, after={"name": site_name}, reason=DEMO_REASON)
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
                             reason=DEMO_REASON)
            rooms.append((room.id, sites[r.site]))
        physicians = []
        for p in PHYSICIANS:
            doc = s.scalar(select(Physician).where(Physician.name == p.name))
            if doc is None:
                doc = Physician(name=p.name, active=True)
                s.add(doc)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE, entity="physician",
                             entity_id=doc.id, after={"name": p.name}, reason=DEMO_REASON)
            physicians.append(doc.id)
        techs = []
        for username in map(validate_username, TECHNOLOGISTS):  # the rule of every account
            user = s.scalar(select(UserAccount).where(UserAccount.username == username))
            if user is None:
                user = UserAccount(username=username, role=Role.TECHNOLOGIST.value,
                                   can_sign_in=False, active=True, failed_logins=0)
                s.add(user)
                s.flush()
                record_event(s, actor=DEMO_ACTOR, action=AuditAction.CREATE,
                             entity="user_account", entity_id=user.id,
                             after={"username": username, "role": "technologist",
                                    "can_sign_in": False}, reason=DEMO_REASON)
            techs.append(user.id)
        settings = load_settings(s)
        catalog = load_catalog(s)
    return {"rooms": rooms, "physicians": physicians, "techs": techs, "settings": settings,
            "catalog": catalog}
