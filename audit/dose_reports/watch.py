"""Files and folders of dose reports: expanding paths, and watching a drop folder.

C-arms and PACS routers export RDSRs into a shared folder, often with no file extension and
sometimes while the file is still being written. The watcher therefore takes every file, waits
until its size and modification time stop changing, imports it once, and moves it out of the
way: to ``done/`` (imported, or a duplicate of one already stored) or ``rejected/`` with a
``<name>.reason.txt`` beside it. A file is moved only after its transaction committed, so a
crash in between leaves it in place and the next pass sees a duplicate and moves it.

One file never holds up the others: a file the reader or the database refuses, or whose import
fails with an unexpected error, is rejected with the reason and the watcher goes on. Only a
database that cannot be reached leaves files in place for the next poll; a file that keeps
failing that way while the database answers is rejected after ``attempts`` tries, so no file is
retried forever.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from audit.dose_reports.store import (
    DUPLICATE,
    OK,
    REJECTED,
    DoseImporter,
    ImportResult,
    database_unavailable,
    refusal,
)

DONE, REJECTED_DIR = "done", "rejected"
REASON_SUFFIX = ".reason.txt"
#: Names that are never reports: partial downloads, editor and OS droppings, our own sidecars.
_SKIP_SUFFIXES = (REASON_SUFFIX, ".part", ".partial", ".tmp", ".crdownload")


class PathsMissing(Exception):
    """Some paths given on the command line do not exist; nothing was imported."""

    def __init__(self, missing: Sequence[str]):
        self.missing = list(missing)
        super().__init__("no such file or folder: " + ", ".join(self.missing))


def _skipped(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower().endswith(_SKIP_SUFFIXES)


def _walk(folder: Path, exclude: Iterable[Path] = ()) -> Iterator[Path]:
    """Files under ``folder``, recursively, sorted, skipping hidden entries and ``exclude``."""
    excluded = {p.resolve() for p in exclude}
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (root_path / d).resolve() not in excluded)
        for name in sorted(files):
            path = root_path / name
            if not _skipped(path) and path.is_file():
                yield path


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files named, plus every file under folders named (recursive), in a stable order.

    Raises PathsMissing before anything is imported when a path does not exist: a typo in a
    folder name should not look like a successful empty import.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise PathsMissing(missing)
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(_walk(path) if path.is_dir() else [path])
    return files


# --- watching a folder --------------------------------------------------------------------------

@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass
class Watcher:
    """Imports files dropped into ``folder`` once each; see the module docstring.

    ``settle`` is how long (seconds) a file's size and mtime must stay unchanged before it is
    read. ``report`` receives each file's result (the CLI prints it as a JSON line).
    ``attempts`` and ``retry_delay`` bound how often one file is tried while the database
    fails without being unreachable (see the module docstring).
    """

    importer: DoseImporter
    folder: Path
    settle: float = 2.0
    report: Callable[[ImportResult], None] = lambda _result: None
    attempts: int = 3
    retry_delay: float = 1.0
    _seen: dict[Path, _Seen] = field(default_factory=dict)

    @property
    def done(self) -> Path:
        return self.folder / DONE

    @property
    def rejected(self) -> Path:
        return self.folder / REJECTED_DIR

    def candidates(self) -> list[Path]:
        return list(_walk(self.folder, exclude=(self.done, self.rejected)))

    def ready(self, now: float | None = None) -> list[Path]:
        """Files whose size and mtime have not changed for ``settle`` seconds."""
        now = time.monotonic() if now is None else now
        present: dict[Path, _Seen] = {}
        stable: list[Path] = []
        for path in self.candidates():
            try:
                stat = path.stat()
            except OSError:
                continue  # moved or deleted meanwhile
            before = self._seen.get(path)
            if before and (before.size, before.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                present[path] = before
                if now - before.since >= self.settle:
                    stable.append(path)
            else:
                present[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
        self._seen = present
        return stable

    def process(self, path: Path) -> ImportResult:
        """Import one file, then move it to done/ or rejected/ (with its reason).

        Raises the database's error, leaving the file in place, only when the database cannot
        be reached: then every file would fail, and the next poll tries again.
        """
        relative = path.relative_to(self.folder)
        result = self._import(path, str(relative))
        if result.status in (OK, DUPLICATE):
            _move(path, self.done / relative)
        else:
            target = _move(path, self.rejected / relative)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            target.with_name(target.name + REASON_SUFFIX).write_text(
                f"{result.reason}\nrejected at {stamp} from {relative}\n", encoding="utf-8")
        self._seen.pop(path, None)
        self.report(result)
        return result

    def _import(self, path: Path, name: str) -> ImportResult:
        """import_path, turning any failure of this file into a rejection (see process)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self.importer.import_path(path, name=name)
            except SQLAlchemyError as exc:
                if not database_unavailable(exc):
                    return ImportResult(name, REJECTED, refusal(exc))
                if attempt < self.attempts:
                    time.sleep(self.retry_delay)
                    continue
                if not self.importer.database_reachable():
                    raise
                return ImportResult(name, REJECTED, f"{refusal(exc)}; {self.attempts} "
                                    "attempts while the database answered other queries")
            except Exception as exc:  # a bug must not hold up the files behind this one
                return ImportResult(name, REJECTED, "internal error while importing: "
                                    f"{type(exc).__name__}: {exc}; nothing of it was written")
        raise AssertionError("unreachable")

    def run_once(self) -> list[ImportResult]:
        """Process what is in the folder now: observe, wait ``settle``, import what held."""
        self.ready()
        if self.settle > 0:
            time.sleep(self.settle)
        return [self.process(path) for path in self.ready()]

    def pending(self) -> list[Path]:
        """Files seen but not yet processed (still changing at the last look)."""
        return sorted(self._seen)

    def run_forever(self, interval: float = 2.0,
                    on_error: Callable[[Exception], None] | None = None,
                    reconcile_every: float = 600.0) -> None:
        """Poll until interrupted. Each file is imported and moved on its own (process); an
        unreachable database or a failing move is reported and retried on the next poll, the
        file staying where it is. Unmatched reports are reconciled again every
        ``reconcile_every`` seconds, since procedures are often logged after the report."""
        last_reconcile = time.monotonic()
        while True:
            try:
                for path in self.ready():
                    self.process(path)
                if time.monotonic() - last_reconcile >= reconcile_every:
                    for result in self.importer.reconcile_unmatched():
                        self.report(result)
                    last_reconcile = time.monotonic()
            except Exception as exc:  # keep watching: the next poll retries
                if on_error is None:
                    raise
                on_error(exc)
            time.sleep(interval)


def _move(source: Path, target: Path) -> Path:
    """Move without overwriting: a second file of the same name gets a numbered suffix."""
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = target, 1
    while candidate.exists() or candidate.with_name(candidate.name + REASON_SUFFIX).exists():
        candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
        number += 1
    shutil.move(str(source), str(candidate))
    return candidate
