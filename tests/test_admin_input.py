"""Administering sites, rooms, physicians and the catalog meets the same bounds as logging
(issue 10): a NUL or lone surrogate in a name is an error naming the field (PostgreSQL cannot
store a NUL), and a number is read by the shared rule ("1,250" refused, not read as 1.25)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from audit import reference_data as admin
from audit.auth import cli_actor
from audit.errors import ValidationFailed


def fields(call: Callable[[], Any]) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        call()
    return [e.field for e in info.value.errors]


def test_names_and_numbers_in_admin_edits_are_bounded(engine: Engine) -> None:
    actor = cli_actor()
    assert fields(lambda: admin.add_site(engine, actor, "River\x00side")) == ["name"]
    assert fields(lambda: admin.add_site(engine, actor, "River\ud800")) == ["name"]
    assert fields(lambda: admin.add_physician(engine, actor, "Dr \x00")) == ["name"]
    admin.add_site(engine, actor, "Riverside")
    assert fields(lambda: admin.add_room(engine, actor, "Riverside", "OR 1",
                                         make="Acme\x00")) == ["make"]
    factor: Any = "1,250"
    assert fields(lambda: admin.add_room(engine, actor, "Riverside", "OR 1",
                                         kap_correction_factor=factor)) == [
        "kap_correction_factor"]
    factor = "0,75"
    assert admin.add_room(engine, actor, "Riverside", "OR 1", kap_correction_factor=factor)
