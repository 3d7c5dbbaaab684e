"""Merging a duplicate site, room, physician or technologist into the one kept (issue 11).

Why: before the log form asked, partial names created duplicates ("Chen" beside "Dr. Amelia
Chen"), and the scorecard showed one person as three, one of them at 1.78× from one record.
An administrator merges the duplicate (the source) into the kept name (the target):

* every record that names the source, void ones too, is re-pointed to the target through an
  audited amendment: its version goes up by one, updated_by is the administrator, and one amend
  event per record carries the changed names before and after (and the effective dose, when a
  room with another KAP correction factor changes it), so verify-audit's replay of each record
  still gives its row (audit.log.replay);
* the source is deactivated, never deleted, and its name is kept as an alias (name_alias) so
  later entries under it resolve to the target (audit.log.names.find); aliases that meant the
  source now mean the target;
* a site's rooms follow it: a room with the same name (or the same name written another way)
  at the kept site takes over its records; any other room moves to the kept site.

Refused: a room into a room of another site (a room belongs to one site: merge the sites);
physicians linked to two different sign-in accounts; a technologist who is an active sign-in
account (deactivate the account first, Admin → Users). Warned, to confirm: rooms whose DAP
display units or KAP correction factors differ (the records keep the DAP as entered; their
effective dose is recomputed with the kept room's factor). Administrators only, checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from audit import dosimetry
from audit.auth import Actor, Permission, require
from audit.errors import FieldError, ValidationFailed, WarningsNotConfirmed
from audit.log import near_names
from audit.log.names import KINDS, candidates_for, find
from audit.settings import load_settings
from audit.storage.engine import retrying, write_session
from audit.storage.models import NameAlias, Procedure, Room, Site, utcnow
from audit.trail import lock_chain, record_event
from audit.vocab import AuditAction

#: The Procedure column that names each kind.
COLUMNS = {"site": "site_id", "room": "room_id", "physician": "physician_id",
           "technologist": "technologist_id"}


@dataclass
class MergeResult:
    """What a merge did: the records re-pointed (each with its own amend event) and, for a
    site, the rooms merged into the kept site's rooms or moved there."""

    kind: str
    source: str
    target: str
    record_ids: list[int] = field(default_factory=list)
    rooms_merged: list[str] = field(default_factory=list)
    rooms_moved: list[str] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"merged": self.kind, "source": self.source, "target": self.target,
                "records": len(self.record_ids), "record_ids": self.record_ids,
                "rooms_merged": self.rooms_merged, "rooms_moved": self.rooms_moved,
                "warnings": [w.as_dict() for w in self.warnings]}


def merge_names(engine: Engine, actor: Actor, kind: str, source: str, target: str,
                reason: str, *, site: str | None = None, target_site: str | None = None,
                confirm_warnings: bool = False) -> MergeResult:
    """Merge `source` into `target` (both exact stored names; rooms at `site`, the target
    room at `target_site`, default the same). See the module docstring for the rules.

    Raises PermissionDenied (not an administrator), ValidationFailed (naming the field) or
    WarningsNotConfirmed; nothing is written then.
    """
    require(actor, Permission.ADMIN)
    errors: list[FieldError] = []
    if kind not in COLUMNS:
        errors.append(FieldError("kind", f"{kind!r} cannot be merged; allowed: "
                                 + ", ".join(COLUMNS)))
    for name, value in (("source", source), ("target", target), ("reason", reason)):
        if not str(value or "").strip():
            errors.append(FieldError(name, "required" + (": say why the names are one"
                                                         if name == "reason" else "")))
    if kind == "room" and not str(site or "").strip():
        errors.append(FieldError("site", "required for a room: the site the rooms are at"))
    if errors:
        raise ValidationFailed(errors)

    def work() -> MergeResult:
        with write_session(engine) as s:
            lock_chain(s)  # the order every writer of records and the chain takes
            return _Merge(s, actor, kind, reason.strip(), confirm_warnings).run(
                source.strip(), target.strip(), str(site or "").strip(),
                str(target_site or site or "").strip())

    return retrying(work)


class _Merge:
    """One merge inside one transaction."""

    def __init__(self, s: Session, actor: Actor, kind: str, reason: str, confirm: bool):
        self.s, self.actor, self.kind, self.reason, self.confirm = s, actor, kind, reason, confirm
        self.warnings: list[FieldError] = []
        #: Procedure column -> {source id: target id}.
        self.moves: dict[str, dict[int, int]] = {c: {} for c in COLUMNS.values()}
        #: Merged room id -> the kept room's KAP correction factor, where the two differ.
        self.factors: dict[int, float] = {}

    # --- finding the two rows ------------------------------------------------------------------
    def _row(self, kind: str, name: str, role: str, scope: int | None = None,
             at: str = "") -> Any:
        spec = KINDS[kind]
        query = select(spec.model).where(getattr(spec.model, spec.column) == name)
        if kind == "room":
            query = query.where(Room.site_id == scope)
        row = self.s.scalar(query.with_for_update())
        if row is None:
            near = candidates_for(self.s, kind, name, scope)
            hint = f"; {near_names.did_you_mean(near)}" if near else ""
            raise ValidationFailed([FieldError(role, f"no {kind} named {name!r}{at}{hint}")])
        return row

    def _pair(self, source: str, target: str, site: str, target_site: str) -> tuple[Any, Any]:
        if self.kind != "room":
            return (self._row(self.kind, source, "source"),
                    self._row(self.kind, target, "target"))
        src_site = self._row("site", site, "site")
        tgt_site = src_site if target_site == site else self._row("site", target_site, "site")
        src = self._row("room", source, "source", src_site.id, f" at site {site!r}")
        tgt = self._row("room", target, "target", tgt_site.id, f" at site {target_site!r}")
        if src_site.id != tgt_site.id:
            raise ValidationFailed([FieldError("target", (
                f"{source!r} is at site {site!r} and {target!r} at {target_site!r}: a room "
                "belongs to one site, so rooms at different sites are not merged (merge the "
                "sites if they are one)"))])
        return src, tgt

    def _check(self, src: Any, tgt: Any) -> None:
        spec = KINDS[self.kind]
        src_name, tgt_name = getattr(src, spec.column), getattr(tgt, spec.column)
        if src.id == tgt.id:
            raise ValidationFailed([FieldError("target", f"{tgt_name!r} is the {self.kind} "
                                               "being merged; name the one to keep")])
        if not tgt.active:
            raise ValidationFailed([FieldError("target", (
                f"{tgt_name!r} is deactivated; reactivate it first or merge into an active "
                f"{self.kind}"))])
        merged_into = self.s.scalar(select(NameAlias.target_id).where(
            NameAlias.kind == self.kind, NameAlias.scope_id == _scope(self.kind, src),
            NameAlias.alias == src_name))
        if merged_into is not None and merged_into != tgt.id:
            raise ValidationFailed([FieldError("source", f"{src_name!r} was already merged "
                                               f"into another {self.kind}")])
        if self.kind == "physician" and src.username and tgt.username \
                and src.username != tgt.username:
            raise ValidationFailed([FieldError("source", (
                f"{src_name!r} is linked to account {src.username} and {tgt_name!r} to "
                f"{tgt.username}: unlink one first (Admin → Physicians)"))])
        if self.kind == "technologist" and src.active and src.can_sign_in:
            raise ValidationFailed([FieldError("source", (
                f"{src_name!r} is an active sign-in account: deactivate it first (Admin → "
                "Users), then merge"))])

    def _room_warnings(self, src: Room, tgt: Room) -> None:
        if src.dap_display_unit != tgt.dap_display_unit:
            self.warnings.append(FieldError("room", (
                f"{src.name!r} displays DAP in {src.dap_display_unit} but {tgt.name!r} in "
                f"{tgt.dap_display_unit}; records keep the unit they were entered in, and "
                f"{tgt.name!r} keeps {tgt.dap_display_unit} (confirm to merge anyway)")))
        if src.kap_correction_factor != tgt.kap_correction_factor:
            self.warnings.append(FieldError("room", (
                f"{src.name!r} has KAP correction factor {src.kap_correction_factor:g} but "
                f"{tgt.name!r} {tgt.kap_correction_factor:g}; the effective dose of "
                f"{src.name!r}'s records is recomputed with {tgt.kap_correction_factor:g} "
                "(confirm to merge anyway)")))

    # --- the merge -----------------------------------------------------------------------------
    def run(self, source: str, target: str, site: str, target_site: str) -> MergeResult:
        src, tgt = self._pair(source, target, site, target_site)
        self._check(src, tgt)
        column = KINDS[self.kind].column
        result = MergeResult(self.kind, getattr(src, column), getattr(tgt, column))
        self.moves[COLUMNS[self.kind]][src.id] = tgt.id
        room_pairs: list[tuple[Room, Room]] = []
        moved_rooms: list[Room] = []
        if self.kind == "room":
            room_pairs.append((src, tgt))
        elif self.kind == "site":
            for room in self.s.scalars(select(Room).where(Room.site_id == src.id)
                                       .order_by(Room.name).with_for_update()):
                same = find(self.s, "room", room.name, tgt.id)
                if same is None:
                    moved_rooms.append(room)
                else:
                    room_pairs.append((room, self.s.get(Room, same[0])))
        for room, kept in room_pairs:
            self._room_warnings(room, kept)
            self.moves["room_id"][room.id] = kept.id
            if room.kap_correction_factor != kept.kap_correction_factor:
                self.factors[room.id] = kept.kap_correction_factor
        if self.warnings and not self.confirm:
            raise WarningsNotConfirmed(self.warnings)
        result.warnings = list(self.warnings)
        result.record_ids = self._repoint(result)
        for room in moved_rooms:
            self._move_room(room, src, tgt)
            result.rooms_moved.append(room.name)
        for room, kept in room_pairs:
            if room is not src:
                self._retire(room, kept, "room", tgt.id, len(result.record_ids))
                result.rooms_merged.append(room.name)
        self._retire(src, tgt, self.kind, _scope(self.kind, tgt), len(result.record_ids))
        if self.kind == "site":
            self._rescope_room_aliases(src.id, tgt.id)
        return result

    def _repoint(self, result: MergeResult) -> list[int]:
        """Each record naming a source row: new ids, version + 1, one amend event."""
        conditions = [getattr(Procedure, c).in_(list(m)) for c, m in self.moves.items() if m]
        records = list(self.s.scalars(select(Procedure).where(or_(*conditions))
                                      .order_by(Procedure.id).with_for_update()))
        if not records:
            return []
        names = {c: _names(self.s, kind) for kind, c in COLUMNS.items()}
        settings = load_settings(self.s) if self.factors else None
        why = (f"merge of {self.kind} {result.source!r} into {result.target!r}: "
               f"{self.reason}")
        now = utcnow()
        for p in records:
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            factor = self.factors.get(p.room_id)
            for kind, column in COLUMNS.items():
                old = getattr(p, column)
                new = self.moves[column].get(old, old)
                if new != old:
                    before[kind], after[kind] = names[column][old], names[column][new]
                    setattr(p, column, new)
            if factor is not None and settings is not None:
                dose = dosimetry.effective_dose(p.dap_gycm2, factor, p.region,
                                                settings.effective_dose_k)
                if dose != p.effective_dose_msv:
                    before["effective_dose_msv"] = p.effective_dose_msv
                    after["effective_dose_msv"] = dose
                    p.effective_dose_msv = dose
            version = p.version
            p.version = version + 1
            p.updated_by = self.actor.username
            p.updated_at = now
            self.s.flush()
            record_event(self.s, actor=self.actor.username, action=AuditAction.AMEND,
                         entity="procedure", entity_id=p.id, reason=why,
                         before=before | {"version": version},
                         after=after | {"version": p.version})
        return [p.id for p in records]

    def _move_room(self, room: Room, src: Site, tgt: Site) -> None:
        room.site_id = tgt.id
        self.s.flush()
        record_event(self.s, actor=self.actor.username, action=AuditAction.AMEND, entity="room",
                     entity_id=room.id, reason=f"moved with the merge of site {src.name!r} "
                     f"into {tgt.name!r}: {self.reason}",
                     before={"name": room.name, "site": src.name},
                     after={"name": room.name, "site": tgt.name})

    def _retire(self, src: Any, tgt: Any, kind: str, scope: int, records: int) -> None:
        """Deactivate the merged row, keep its name as an alias of the kept one, and point
        the aliases that meant it at the kept one."""
        spec = KINDS[kind]
        src_name, tgt_name = getattr(src, spec.column), getattr(tgt, spec.column)
        before: dict[str, Any] = {"name": src_name, "active": src.active}
        after: dict[str, Any] = {"name": src_name, "active": False, "merged_into": tgt_name,
                                 "records": records}
        if kind == "physician" and src.username:
            linked = src.username
            before["username"], after["username"] = linked, None
            src.username = None
            self.s.flush()
            if not tgt.username:
                tgt.username = linked
                self.s.flush()
                record_event(self.s, actor=self.actor.username, action=AuditAction.AMEND,
                             entity="physician", entity_id=tgt.id,
                             reason=f"account link taken over from {src_name!r}: {self.reason}",
                             before={"name": tgt_name, "username": None},
                             after={"name": tgt_name, "username": linked})
        src.active = False
        self.s.flush()
        record_event(self.s, actor=self.actor.username, action=AuditAction.DEACTIVATE,
                     entity=spec.entity, entity_id=src.id, before=before, after=after,
                     reason=f"merged into {tgt_name!r}: {self.reason}")
        for alias in self.s.scalars(select(NameAlias).where(
                NameAlias.kind == kind, NameAlias.target_id == src.id)):
            alias.target_id = tgt.id
            self.s.flush()
            record_event(self.s, actor=self.actor.username, action=AuditAction.AMEND,
                         entity="name_alias", entity_id=alias.id, reason=self.reason,
                         before={"alias": alias.alias, "target": src_name},
                         after={"alias": alias.alias, "target": tgt_name})
        exists = self.s.scalar(select(NameAlias.id).where(
            NameAlias.kind == kind, NameAlias.scope_id == scope, NameAlias.alias == src_name))
        if exists is None:
            alias = NameAlias(kind=kind, scope_id=scope, alias=src_name, target_id=tgt.id,
                              source_id=src.id, created_at=utcnow(),
                              created_by=self.actor.username)
            self.s.add(alias)
            self.s.flush()
            record_event(self.s, actor=self.actor.username, action=AuditAction.CREATE,
                         entity="name_alias", entity_id=alias.id, reason=self.reason,
                         after={"kind": kind, "scope_id": scope, "alias": src_name,
                                "target": tgt_name, "target_id": tgt.id})

    def _rescope_room_aliases(self, old_site: int, new_site: int) -> None:
        """Room aliases of a merged site now belong to the kept site (unless it has one)."""
        for alias in self.s.scalars(select(NameAlias).where(
                NameAlias.kind == "room", NameAlias.scope_id == old_site)):
            taken = self.s.scalar(select(NameAlias.id).where(
                NameAlias.kind == "room", NameAlias.scope_id == new_site,
                NameAlias.alias == alias.alias))
            if taken is None:
                alias.scope_id = new_site
                self.s.flush()
                record_event(self.s, actor=self.actor.username, action=AuditAction.AMEND,
                             entity="name_alias", entity_id=alias.id, reason=self.reason,
                             before={"alias": alias.alias, "scope_id": old_site},
                             after={"alias": alias.alias, "scope_id": new_site})


def _scope(kind: str, row: Any) -> int:
    """A room's alias belongs to its site; the other kinds' to scope 0."""
    return int(row.site_id) if kind == "room" else 0


def _names(s: Session, kind: str) -> dict[int, str]:
    spec = KINDS[kind]
    return dict(s.execute(select(spec.model.id, getattr(spec.model, spec.column))).all())

