"""A receiver in this process, on a free port, for each test that asks (stopped after it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from audit.auth import cli_actor
from audit.dicom_net.scp import Receiver


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(engine: Engine, **options: Any) -> Receiver:
        options.setdefault("address", "127.0.0.1")
        receiver = Receiver(engine, cli_actor(), options.pop("inbox", tmp_path / "inbox"),
                            port=0, **options)
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(engine: Engine, start_receiver: Callable[..., Receiver]) -> Receiver:
    return start_receiver(engine)
