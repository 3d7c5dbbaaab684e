"""Migration 0015: the patient letter's practice settings, seeded empty with their sources,
a value set before the upgrade kept, and removed again on downgrade."""

from __future__ import annotations

from sqlalchemy import text

from audit.storage.engine import downgrade, make_engine, migrate
from tests.conftest import Databases

KEYS = ("images_held_at", "practice_contact", "practice_name")


def test_0015_seeds_the_practice_settings_and_keeps_a_local_value(databases: Databases,
                                                                  backend: str) -> None:
    url = databases.empty(backend)
    migrate(url, "0014")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # set by hand before the upgrade
            conn.execute(text("INSERT INTO setting (key, value, source, updated_at, updated_by)"
                              " VALUES ('practice_name', '\"Riverside\"', 'local', "
                              "CURRENT_TIMESTAMP, 'admin')"))
        migrate(url)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT key, source FROM setting WHERE key IN "
                                          "('practice_name', 'practice_contact', "
                                          "'images_held_at')")).all())
        assert sorted(rows) == list(KEYS)
        assert rows["practice_name"] == "local"
        assert "patient letter" in rows["images_held_at"]
        downgrade(url, "0014")
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM setting WHERE key IN "
                                     "('practice_contact', 'images_held_at')")).scalar()
        assert left == 0
    finally:
        engine.dispose()
