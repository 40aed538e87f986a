"""The development outbox: .eml files in a folder per recipient and organiser, written and
erased under one lock, so that erasing a person leaves no file that names them."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from consumers.mail.letters import Envelope, Mail
from consumers.mail.transports import OrganiserErasedError, RecipientErasedError


class OutboxTransport:
    """The development default: one .eml file per message under
    <data dir>/outbox/<recipient id>/<organiser id>/, so erasing a person can remove every file
    addressed to them and every file about their events (which names them as the organiser).
    Writing and erasing take one lock, and the people a message names are looked up again under
    it, so no file outlives an erasure. The lock file stays open for a pass rather than being
    opened per message."""

    def __init__(self, directory: Path, address: Callable[[str], str | None]) -> None:
        self.directory = directory
        self.address = address
        self.lock: IO[str] | None = None

    async def deliver(self, message: Mail, envelope: Envelope) -> None:
        if self.lock is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.lock = lock_path(self.directory).open("a")
        data = message.as_bytes()
        path = self.directory / envelope.recipient / envelope.organiser / (
            str(message["Message-ID"]).strip("<>").replace("@", "_") + ".eml")
        with holding(self.lock):
            if self.address(envelope.recipient) is None:
                raise RecipientErasedError(envelope.recipient)
            if envelope.names_organiser and self.address(envelope.organiser) is None:
                raise OrganiserErasedError(envelope.organiser)
            try:
                path.write_bytes(data)
            except FileNotFoundError:  # the first message to this person about these events
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    async def end_pass(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextmanager
def holding(handle: IO[str]) -> Iterator[None]:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def outbox_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with lock_path(directory).open("a") as handle, holding(handle):
        yield


def erase_outbox(directory: Path, person_id: str) -> None:
    """Every email to the person, and every email naming them as an event's organiser. Called
    after the person's row is erased, so a delivery waiting on the lock finds them gone and
    writes nothing that names them."""
    with outbox_lock(directory):
        for folder in [directory / person_id, *directory.glob(f"*/{person_id}")]:
            shutil.rmtree(folder, ignore_errors=True)
