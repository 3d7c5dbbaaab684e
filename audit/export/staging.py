"""Where an export is written until it is complete: a private partial folder beside the target.

Why: an export can hold medical record numbers, and one killed halfway used to leave a large
procedures.csv on disk that no audit event accounted for. So every export is written inside

    <parent>/.<name>.partial-<8 hex>/      mode 0700: nobody else can list or read it
        .owner                             {"pid", "host", "started"} of the writing process
        <name>/                            the export folder as it will appear
        <name>.zip                         (with make_zip)

and only when complete is <name>/ (then <name>.zip) renamed into <parent>, an atomic rename on
the same file system, so the target either does not exist or is whole. An exception,
KeyboardInterrupt or SystemExit (the command line turns SIGTERM into one) removes the partial
folder (Staging.discard). A process killed outright (SIGKILL, power loss) cannot clean up, so
every export first sweeps its parent folder: a partial folder whose owner process is gone (its
pid dead, or reused by a process started at another time) is removed. A partial folder without
an owner file is left for GRACE_SECONDS (its owner may be between creating the folder and
writing the file, or between removing the file and the final rename). Partial folders written
from another host (a shared drive) are left alone: their owner cannot be checked from here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

OWNER_FILE = ".owner"
PARTIAL = ".partial-"
#: How long a partial folder without a readable owner file is presumed still in use.
GRACE_SECONDS = 3600


def _process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), to tell a
    process from a later one that reused its pid; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name (field 2) may hold spaces and ')'
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def owner_gone(owner: dict[str, Any]) -> bool:
    """Whether the process an owner file names has ended (False when it cannot be told)."""
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this process: another export of ours (a dashboard thread) is running
    if not _alive(pid):
        return True
    started = owner.get("started")
    return started is not None and _process_start(pid) not in (None, started)


def is_stale(partial: Path, now: float | None = None) -> bool:
    """Whether a partial folder was abandoned by a process that no longer runs."""
    try:
        owner = json.loads((partial / OWNER_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        owner = None
    if isinstance(owner, dict):
        return owner_gone(owner)
    try:
        age = (now or time.time()) - partial.stat().st_mtime
    except OSError:
        return False
    return age > GRACE_SECONDS


def sweep(parent: Path) -> list[Path]:
    """Remove the partial exports abandoned in `parent`; return what was removed."""
    removed: list[Path] = []
    try:
        candidates = [p for p in parent.iterdir()
                      if p.name.startswith(".") and PARTIAL in p.name and p.is_dir()
                      and not p.is_symlink()]
    except OSError:
        return removed
    for partial in candidates:
        if is_stale(partial):
            shutil.rmtree(partial, ignore_errors=True)
            if not partial.exists():
                removed.append(partial)
    return removed


class Staging:
    """One export's partial folder: `folder` to write the export into, `zip_path` for its zip;
    `commit` renames them into place, `discard` removes everything."""

    def __init__(self, target: Path, zip_target: Path | None, tag: str):
        self.target = target
        self.zip_target = zip_target
        self.root = target.with_name(f".{target.name}{PARTIAL}{tag}")
        self.folder = self.root / target.name
        self.zip_path = self.root / zip_target.name if zip_target is not None else None

    def create(self) -> None:
        """Make the 0700 partial folder and its owner file, then the export folder inside."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700)
        os.chmod(self.root, 0o700)  # whatever the umask
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": _process_start(os.getpid())}
        (self.root / OWNER_FILE).write_text(json.dumps(owner), "utf-8")
        self.folder.mkdir()

    def commit(self) -> None:
        """Move the finished zip, then the folder, into place, and remove the partial folder:
        all or nothing (a zip placed here is taken back if the folder cannot follow). An
        empty target folder (allowed: exports never overwrite content) is replaced."""
        placed: Path | None = None
        if self.zip_path is not None and self.zip_target is not None:
            _place_file(self.zip_path, self.zip_target)
            placed = self.zip_target
        try:
            if self.target.is_dir() and not any(self.target.iterdir()):
                self.target.rmdir()
            os.rename(self.folder, self.target)  # fails on a folder that has content meanwhile
        except BaseException:
            if placed is not None:
                placed.unlink(missing_ok=True)
            raise
        (self.root / OWNER_FILE).unlink(missing_ok=True)
        self.root.rmdir()

    def discard(self) -> None:
        """Remove the partial folder and all it holds (the export failed or was stopped)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _place_file(source: Path, target: Path) -> None:
    """Move `source` to `target`, never overwriting: a hard link fails if `target` exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise FileExistsError(f"{target} appeared during the export; exports never "
                              "overwrite") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise FileExistsError(f"{target} appeared during the export") from None
        os.replace(source, target)
        return
    source.unlink()
