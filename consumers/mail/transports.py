"""Where messages go: the Transport port the mailer delivers through, the errors a transport
may answer about people erased meanwhile, and SMTP (the other transport, .eml files, is
consumers.mail.dev_outbox)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from consumers.mail.letters import Envelope, Mail


class Transport(Protocol):
    """Where messages go. A delivery pass ends with end_pass(), so what a pass keeps open (an
    SMTP connection, the outbox lock file) is shared by its messages and never outlives it.
    A transport that can see erasures (the dev outbox) answers with the errors below."""

    async def begin_pass(self, recipients: Collection[str]) -> None:
        """Told whom a pass's messages are for before the first: a transport that looks
        people up (the dev outbox) does so once for all of them."""
        ...

    async def deliver(self, message: Mail, envelope: Envelope) -> None: ...

    async def end_pass(self) -> None: ...


class RecipientErasedError(Exception):
    """The recipient's data was erased while their message was on its way."""


class OrganiserErasedError(Exception):
    """The organiser named in a message was erased while it was on its way: the message must
    be made again without their name."""


class SmtpTransport:
    """smtp://user:password@host:port (add ?starttls=true for STARTTLS) or smtps:// (TLS). One
    connection serves a whole delivery pass: a connection, TLS handshake and login per message
    cost more than the message."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"ALPHABET_SMTP_URL must be smtp://host:port or smtps://…, "
                             f"not {url!r}")
        query = parse_qs(parts.query)
        self.options: dict[str, Any] = {
            "hostname": parts.hostname,
            "port": parts.port or (465 if parts.scheme == "smtps" else 25),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": parts.scheme == "smtps",
            "start_tls": query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            "timeout": 10,
        }
        self.client: aiosmtplib.SMTP | None = None

    async def deliver(self, message: Mail, envelope: Envelope) -> None:
        if self.client is not None:
            try:
                await self.client.send_message(message)
                return
            except ConnectionError:
                # The server hung up on the open connection (servers limit messages or idle
                # time per connection): that says nothing about this message, so try it once
                # more on a new one.
                self._drop()
            except BaseException:
                self._drop()
                raise
        self.client = aiosmtplib.SMTP(**self.options)
        try:
            await self.client.connect()
            await self.client.send_message(message)
        except BaseException:
            self._drop()
            raise

    async def begin_pass(self, recipients: Collection[str]) -> None:
        """The connection is opened by the first message."""

    async def end_pass(self) -> None:
        if self.client is None:
            return
        try:
            await self.client.quit()
        except (OSError, aiosmtplib.SMTPException):
            pass  # the messages are sent; a goodbye the server missed changes nothing
        finally:
            self._drop()

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
