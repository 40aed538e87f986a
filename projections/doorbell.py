"""How processes sharing a SQLite data dir wake each other: SQLite cannot tell another process
that something was saved (PostgreSQL's LISTEN/NOTIFY can), so each waiting process binds a
Unix datagram socket and leaves a file naming it in the data dir's `wake/` directory, and
whoever saves something (or brings the views forward) sends one byte to each. The sockets
are in Linux's abstract namespace (no file, no limit from the length of the data dir's path),
named after the data dir, so two data dirs never ring each other. A ring costs a directory
listing and a send per listener; a listener costs nothing until rung, so an idle server
sleeps instead of polling. A byte that finds the listener's buffer full is dropped: a wake-up
is already pending there. Sockets whose process is gone refuse the byte; their files go."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_numbers = itertools.count()


class Doorbell:
    """Rings every listener of a data dir; `wake` is called whenever this one is rung (from a
    thread of its own with `start()`, on the event loop with `run_async()`)."""

    def __init__(self, directory: Path, wake: Callable[[], None] = lambda: None) -> None:
        self.directory = directory
        self.wake = wake
        self.stopped = threading.Event()
        self.path: Path | None = None  # the file naming our socket, once listening
        self._prefix = "\0alphabet-wake-" + hashlib.sha256(
            str(directory.resolve()).encode()).hexdigest()[:16] + "-"
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    def ring(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            path = self.directory / name
            if path == self.path:  # this process knows already
                continue
            try:
                self._sender.sendto(b"!", self._prefix + name)
            except BlockingIOError:  # a wake-up is pending there already
                pass
            except (ConnectionRefusedError, FileNotFoundError):  # its process is gone
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            except OSError as exc:
                log.debug("could not ring %s: %s", path, exc)

    def _bind(self) -> socket.socket:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{next(_numbers)}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(self._prefix + name)
        self.path = self.directory / name
        self.path.touch()
        return listener

    def start(self) -> Doorbell:
        listener = self._bind()

        def listen() -> None:
            with listener:
                self.wake()  # for whatever was saved before we listened
                while not self.stopped.is_set():
                    listener.recv(64)
                    self.wake()

        threading.Thread(target=listen, name="doorbell", daemon=True).start()
        return self

    async def run_async(self) -> None:
        listener = self._bind()
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            with listener:
                self.wake()
                while True:
                    await loop.sock_recv(listener, 64)
                    self.wake()
        finally:
            self.close()

    def stop(self) -> None:
        self.stopped.set()
        self.close()

    def close(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
