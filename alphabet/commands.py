"""What each `alphabet` command does, one function a command, taking the settings and the
parsed arguments and giving the exit code. Each imports what it needs (Sanic, eventsourcing,
tqdm, the wiring) when it runs, so alphabet.cli can name them without the cost; a failure the
operator can fix is one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alphabet.settings import Settings
    from domain.application import EventsApplication
    from projections.database import StateDatabase

USAGE_ERROR = 2  # as argparse exits for a bad argument


def fail(command: str, message: str, code: int = USAGE_ERROR) -> int:
    print(f"alphabet {command}: error: {message}", file=sys.stderr)
    return code


@contextmanager
def stores(settings: Settings) -> Iterator[tuple[EventsApplication, StateDatabase]]:
    """The event store and the state database, their tables made where missing; closed when
    the command is done with them, however it ends."""
    from alphabet import wiring

    wiring.migrate(settings)
    app, db = wiring.event_application(settings), wiring.state_database(settings)
    try:
        yield app, db
    finally:
        app.close()
        db.close()


def url(host: str, number: int) -> str:
    return f"http://[{host}]:{number}" if ":" in host else f"http://{host}:{number}"


def cannot_listen(host: str, number: int) -> str | None:
    """Why the server could not listen on host:port, found before anything starts: Sanic binds
    only after the start-up work, and a failure there is a traceback. The socket is made as
    Sanic makes it (SO_REUSEADDR, so a port left in TIME_WAIT is no obstacle)."""
    import socket
    from ipaddress import ip_address

    try:
        family = socket.AF_INET6 if ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name
        family = socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, number))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return f"cannot listen on {url(host, number)}: {reason[:1].lower()}{reason[1:]}"
    return None


def serve(settings: Settings, args: argparse.Namespace) -> int:
    problem = cannot_listen(args.host, args.port)
    if problem:
        return fail("serve", problem)
    from dataclasses import replace
    from functools import partial

    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from alphabet import metrics_dir

    metrics_dir.prepare(settings)  # before anything imports prometheus_client
    from alphabet.app import create_app

    served = url(args.host, args.port)
    settings = replace(settings, served_url=served)
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, single_process=False,
                access_log=args.access_log, motd=False)

    async def announce(_: Any) -> None:
        """Once the port is bound (Sanic binds in the main process before this), before the
        workers take the first request; through the logs, so it keeps their format."""
        import logging

        logging.getLogger("alphabet").info(
            "Alphabet Events serving on %s (docs at %s/docs)", served, served)

    app.register_listener(announce, "main_process_ready")
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Create the event store's and the state database's tables where missing (`serve` and
    `worker` do this too when they start); safe to run any number of times."""
    from alphabet import wiring

    wiring.migrate(settings)
    where = (f"PostgreSQL database {settings.postgres.dbname!r} on {settings.postgres.host}"
             if settings.postgres else f"{settings.data_dir}/")
    print(f"schema up to date in {where}")
    return 0


def history(settings: Settings, args: argparse.Namespace) -> int:
    """A readable audit trail. Facts name people by id; they are shown by name where the name
    still exists (usernames, and invitees' addresses: this is the operator's view, as the API
    shows them to the owner), and as deleted users where it does not."""
    from uuid import UUID

    try:
        event_id = UUID(args.event_id)
    except ValueError:
        return fail("history", f"{args.event_id!r} is not an event id (a UUID)")
    from domain.errors import DomainError
    from domain.events import fact_by, fact_changes, fact_people, instance_of
    from domain.presentation import instance_id, utc
    from projections.people import People

    with stores(settings) as (app, db):
        try:
            facts = app.history(event_id)
            people = {fact_by(fact) for fact in facts}
            for fact in facts:
                people.update(fact_people(fact))
            names = People(db).names(p for p in people if p)
        except DomainError as exc:
            return fail("history", str(exc), 1)

    def who(person: str | None) -> str:
        if person is None:
            return "(nobody)"
        return names[person][1] if person in names else f"(deleted user {person})"

    for fact in facts:
        print(f"v{fact.originator_version}  {utc(fact.timestamp)}  {type(fact).__name__}"
              f"  by {who(fact_by(fact))}")
        if (key := instance_of(fact)) is not None:  # about one occurrence of a series
            print(f"    occurrence: {instance_id(fact.originator_id, key)}")
        for name, value in fact_changes(fact).items():
            shown = (", ".join(map(who, value)) if name == "participants"
                     else who(value) if name == "attendee"
                     else utc(value) if hasattr(value, "astimezone") else value)
            print(f"    {name}: {shown}")
    return 0


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild views from position 0 beside the live ones and swap them in; a running server
    keeps answering from the old tables until the swap."""
    from tqdm import tqdm

    from alphabet import wiring
    from projections.follower import Log
    from projections.replay import replay as rebuild

    chosen = [v for v in wiring.views(settings) if args.view in (None, v.name)]
    if not chosen:
        names = ", ".join(v.name for v in wiring.views(settings))
        return fail("replay", f"no view named {args.view!r} (there is: {names})")
    with stores(settings) as (app, db):
        log_ = Log(app.recorder, app.mapper)
        for view in chosen:
            with tqdm(desc=f"replay {view.name}", unit="fact", total=log_.head()) as bar:

                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                rebuilt = rebuild(db, log_, view, progress=advance)
            print(f"{view.name}: rebuilt to position {rebuilt} and swapped in")
    return 0


def export(settings: Settings, args: argparse.Namespace) -> int:
    """The event store's facts and the rows they cannot give back, to one checked file
    (alphabet.transfer)."""
    from pathlib import Path

    path = Path(args.file)
    if path.exists():
        return fail("export", f"{path} exists; name a new file")
    if not path.parent.is_dir():
        return fail("export", f"{path.parent} is not a directory")
    from alphabet.transfer import export as write

    with stores(settings) as (app, db):
        done = write(app, db, path)
    rows = ", ".join(f"{count} {table}" for table, count in done.rows.items())
    print(f"exported {done.facts} facts and {rows} to {path}")
    return 0


def import_(settings: Settings, args: argparse.Namespace) -> int:
    """An export loaded into an empty store, checked whole first; then every view rebuilt
    from the imported facts, as `alphabet replay` does."""
    from pathlib import Path

    path = Path(args.file)
    if not path.is_file():
        return fail("import", f"{path} is not a file")
    from alphabet.transfer import TransferError, check_empty, load, verify

    with stores(settings) as (app, db):
        try:
            check_empty(app, db)
            expected = verify(path)
            check_empty(app, db)  # still, after a check that can take a while
            load(app, db, path, expected)
        except TransferError as exc:
            return fail("import", str(exc), 1)
    rows = ", ".join(f"{count} {table}" for table, count in expected.rows.items())
    print(f"imported {expected.facts} facts and {rows} from {path}")
    return replay(settings, argparse.Namespace(view=None))


def operator(settings: Settings, args: argparse.Namespace) -> int:
    """Grants and revocations are facts on the account (audited, replayed with the rest of
    the store); `list` shows them beside the accounts ALPHABET_OPERATORS names."""
    from uuid import UUID

    from projections.people import People

    with stores(settings) as (app, db):
        people = People(db)
        if args.action == "list":
            granted = app.operators()
            names = people.names(granted)
            for user_id in granted:
                print(f"{names[user_id][1] if user_id in names else user_id}  (granted)")
            for name in sorted(settings.operators):
                print(f"{name}  (ALPHABET_OPERATORS)")
            return 0
        account = people.by_username(args.username)
        if account is None:
            return fail("operator", f"no account named {args.username!r}", 1)
        change = app.grant_operator if args.action == "grant" else app.revoke_operator
        written = change(UUID(account.id))
        done = "granted to" if args.action == "grant" else "revoked from"
        unchanged = "already had" if args.action == "grant" else "did not have"
        print(f"operator {done} {account.username}" if written.position is not None
              else f"{account.username} {unchanged} an operator grant; nothing recorded")
        return 0


def worker(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.kafka_url:
        return fail("worker", "it needs ALPHABET_KAFKA_URL (e.g. kafka://localhost:9092); "
                    "without Kafka, `alphabet serve` runs mail and reminders itself")
    from alphabet import wiring
    from alphabet.worker import run_worker  # faust is imported only by this command

    wiring.migrate(settings)
    run_worker(settings)
    return 0
