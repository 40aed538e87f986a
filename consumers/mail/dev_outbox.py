"""The development outbox: .eml files in a folder per recipient and organiser, written and
erased under one lock, so that erasing a person leaves no file that names them."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator
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
    it, so no file outlives an erasure. A pass takes the lock at its first message and holds it
    to its end, so each person is looked up once a pass (an erasure waiting for the lock
    removes what the pass wrote after looking them up)."""

    def __init__(self, directory: Path,
                 addresses: Callable[[Iterable[str]], dict[str, str]]) -> None:
        self.directory = directory
        self.addresses = addresses
        self.lock: IO[str] | None = None
        self.present: dict[str, bool] = {}  # this pass's lookups, made under the lock
        self.expected: set[str] = set()  # this pass's recipients

    async def begin_pass(self, recipients: Collection[str]) -> None:
        """Looked up together, under the lock, with the first person a message names (a
        statement each was most of the mailer's statements on PostgreSQL)."""
        self.expected = set(recipients)

    async def deliver(self, message: Mail, envelope: Envelope) -> None:
        if self.lock is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.lock = lock_path(self.directory).open("a")
            fcntl.flock(self.lock, fcntl.LOCK_EX)
        if not self._present(envelope.recipient):
            raise RecipientErasedError(envelope.recipient)
        if envelope.names_organiser and not self._present(envelope.organiser):
            raise OrganiserErasedError(envelope.organiser)
        path = self.directory / envelope.recipient / envelope.organiser / (
            str(message["Message-ID"]).strip("<>").replace("@", "_") + ".eml")
        data = message.as_bytes()
        try:
            path.write_bytes(data)
        except FileNotFoundError:  # the first message to this person about these events
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    async def end_pass(self) -> None:
        self.present.clear()
        self.expected.clear()
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()
            self.lock = None

    def _present(self, person_id: str) -> bool:
        if person_id not in self.present:
            wanted = {person_id, *self.expected} - self.present.keys()
            found = self.addresses(wanted)
            self.present.update((person, person in found) for person in wanted)
        return self.present[person_id]


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
