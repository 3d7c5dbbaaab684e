"""The frame file: the analysis frame kept on disk so a new process need not re-read every record.

Why a separate module: the file's name and layout are one decision (an .npz of the frame's
COLUMNS plus the audit event id and hash it was made at), and `FrameCache` only decides when
to trust and when to rewrite it. The file holds record numbers only, no names or MRNs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from audit.analytics._packing import COLUMNS

#: Where the frame file is kept: the dashboard, the committee report and `figures warm` share it.
ENV_CACHE_DIR = "FLUORO_AUDIT_CACHE_DIR"
DEFAULT_CACHE_DIR = "var/cache"


def store_dir() -> Path:
    """The directory of the frame files ($FLUORO_AUDIT_CACHE_DIR, default var/cache)."""
    return Path(os.environ.get(ENV_CACHE_DIR, DEFAULT_CACHE_DIR))


def path_for(store: Path, engine: Engine) -> Path:
    """One file per database (named by a digest of its URL, password hidden)."""
    url = engine.url.render_as_string(hide_password=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(store) / f"frame-{digest}.npz"


def read(path: Path) -> tuple[int, str, dict[str, np.ndarray]]:
    """The token, its audit event hash and the frame's columns (OSError, KeyError or ValueError
    when the file is unreadable or from an older layout)."""
    with np.load(path, allow_pickle=False) as stored:
        token = int(stored["token"])
        token_hash = str(stored["token_hash"])
        columns = {name: stored[name] for name in COLUMNS}
    return token, token_hash, columns


def write(path: Path, token: int, token_hash: str, records: pd.DataFrame) -> None:
    """Replace the file atomically (written beside it, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, token=np.int64(token), token_hash=np.str_(token_hash),
             **{name: records[name].to_numpy() for name in COLUMNS})
    os.replace(partial, path)
