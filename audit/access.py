"""Who may read or change which procedure record, and who may see patient identifiers.

Why one module: the same rule is enforced in several shapes. The Records list filters in SQL
(joined to names, or as id sets so each filter uses its index), a single record is checked in
Python, and the pages hide buttons the service would refuse. Written once per shape in one
place, the shapes cannot drift apart. Permissions per role are in audit.auth; this module says
what they mean for a given record (docs/design.md, roles and permissions).

The rule:

* Roles with VIEW_ALL_RECORDS (quality officer, RSO, admin) read every record.
* A physician reads the records of their own patients: those naming them as physician.
* Anyone else (a technologist) reads the records they logged as technologist.
* AMEND_ANY changes any record; AMEND_OWN only records the actor created or is named on as
  technologist. A void record is never changed.
* Patient identifiers (the MRN) are shown only with VIEW_PHI; others see the pseudonym.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.expression import ColumnElement

from audit.auth import Actor, Permission, require
from audit.errors import FieldError, PermissionDenied, ValidationFailed
from audit.storage.models import Patient, Physician, Procedure, UserAccount
from audit.vocab import RecordStatus, Role


class ReadScope(Enum):
    """Which procedure records an actor may read."""

    ALL = "all records"
    OWN_PATIENTS = "records naming them as physician"
    OWN_ENTRIES = "records naming them as technologist"


def read_scope(actor: Actor) -> ReadScope:
    if actor.can(Permission.VIEW_ALL_RECORDS):
        return ReadScope.ALL
    if actor.role is Role.PHYSICIAN:
        return ReadScope.OWN_PATIENTS
    return ReadScope.OWN_ENTRIES


def read_predicate(actor: Actor) -> ColumnElement[bool] | None:
    """The read scope as a condition on a query that joins Physician and UserAccount to the
    procedure; None when the actor reads everything."""
    scope = read_scope(actor)
    if scope is ReadScope.OWN_PATIENTS:
        return Physician.username == actor.username
    if scope is ReadScope.OWN_ENTRIES:
        return UserAccount.username == actor.username
    return None


def read_scope_ids(actor: Actor) -> tuple[InstrumentedAttribute[Any], Select[Any]] | None:
    """The read scope as (procedure column, SELECT of the ids it may hold), for queries on the
    procedure table alone (the ids are looked up first, so the planner can use the column's
    index); None when the actor reads everything."""
    scope = read_scope(actor)
    if scope is ReadScope.OWN_PATIENTS:
        return Procedure.physician_id, select(Physician.id).where(
            Physician.username == actor.username)
    if scope is ReadScope.OWN_ENTRIES:
        return Procedure.technologist_id, select(UserAccount.id).where(
            UserAccount.username == actor.username)
    return None


def may_read(actor: Actor, record: Mapping[str, Any]) -> bool:
    """Whether `actor` may read `record`, given its `physician_username` and `technologist`."""
    scope = read_scope(actor)
    if scope is ReadScope.OWN_PATIENTS:
        return record.get("physician_username") == actor.username
    if scope is ReadScope.OWN_ENTRIES:
        return record.get("technologist") == actor.username
    return True


def check_may_read(actor: Actor, record: Mapping[str, Any]) -> None:
    """Raise PermissionDenied unless `actor` may read `record` (see may_read)."""
    if not may_read(actor, record):
        raise PermissionDenied(f"{actor.username} ({actor.role.value}) may not read this record")


def may_change(actor: Actor, record: Mapping[str, Any]) -> bool:
    """Whether `actor` may amend or void `record` (a dict from ProcedureLog.get): the same rule
    the service enforces, so a page can hide buttons the service would refuse."""
    if record.get("status") == RecordStatus.VOID.value:
        return False
    if actor.can(Permission.AMEND_ANY):
        return True
    return actor.can(Permission.AMEND_OWN) and actor.username in (
        record.get("created_by"), record.get("technologist"))


def check_may_change(actor: Actor, record_id: int, created_by: str | None,
                     technologist: str | None) -> None:
    """Raise PermissionDenied unless `actor` may change the record (its void status is checked
    by the caller, which says why a void record cannot change)."""
    if actor.can(Permission.AMEND_ANY):
        return
    require(actor, Permission.AMEND_OWN)
    if actor.username not in (created_by, technologist):
        raise PermissionDenied(f"record {record_id} was logged by {technologist}; a "
                               "technologist may change only their own entries")


def logs_only_own_cases(actor: Actor) -> bool:
    """A signed-in technologist logs their own cases only (the record names them); others,
    and the command line, may log a case for any technologist."""
    return not actor.system and actor.role is Role.TECHNOLOGIST


def check_names_self_as_technologist(actor: Actor, technologist: Any) -> None:
    """A signed-in technologist's record names them as its technologist, when logged and
    after every amend: otherwise one technologist could hand a case to another (who then
    answers for its dose and contrast) or take theirs out of their own list. Raises
    ValidationFailed naming the field; other roles and the command line may name anyone."""
    if not logs_only_own_cases(actor):
        return
    named = str(technologist or "").strip()
    if named and named != actor.username:
        raise ValidationFailed([FieldError(
            "technologist", f"you are signed in as {actor.username}; a technologist logs "
            "their own cases and cannot give a record to another technologist")])


def may_see_patient_id(actor: Actor) -> bool:
    """Whether the actor may see medical record numbers (PHI); others get the pseudonym."""
    return actor.can(Permission.VIEW_PHI)


def patient_column(actor: Actor) -> InstrumentedAttribute[Any]:
    """The patient column to show this actor: the MRN, or the keyed pseudonym without PHI."""
    return Patient.mrn if may_see_patient_id(actor) else Patient.pseudonym
