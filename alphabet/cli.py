"""The `alphabet` command: serve, migrate, history, replay, operator, export, import, worker.

It starts fast and fails plainly. Each command imports what it needs (Sanic, eventsourcing,
tqdm, the wiring) when it runs, so `alphabet --help` or a mistyped argument costs little more
than Python's own start; a bad argument, a bad setting or a port that cannot be listened on is
one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from alphabet.settings import Settings
    from domain.application import EventsApplication
    from projections.database import StateDatabase

USAGE_ERROR = 2  # as argparse exits for a bad argument


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (it prints the whole usage first), pointing to
    --help instead, and every default shown in help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Version(argparse.Action):
    """--version, read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("alphabet-events")
        except PackageNotFoundError:
            shown = "(version unknown: not installed)"
        print(f"{parser.prog} {shown}")
        parser.exit()


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def fail(command: str, message: str, code: int = USAGE_ERROR) -> int:
    print(f"alphabet {command}: error: {message}", file=sys.stderr)
    return code


def stores(settings: Settings) -> tuple[EventsApplication, StateDatabase]:
    """The event store and the state database, their tables made where missing."""
    from alphabet import wiring

    wiring.migrate(settings)
    return wiring.event_application(settings), wiring.state_database(settings)


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
    from functools import partial

    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from alphabet import metrics_dir

    metrics_dir.prepare(settings)  # before anything imports prometheus_client
    from alphabet.app import create_app

    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, single_process=False,
                access_log=args.access_log, motd=False)
    served = url(args.host, args.port)

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
    from domain.events import fact_by, fact_changes
    from domain.presentation import utc
    from projections.people import People

    app, db = stores(settings)
    try:
        facts = app.history(event_id)
        people = {fact_by(fact) for fact in facts}
        for fact in facts:
            people.update(fact_changes(fact).get("participants", []))
        names = People(db).names(p for p in people if p)
    except DomainError as exc:
        return fail("history", str(exc), 1)
    finally:
        app.close()
        db.close()

    def who(person: str | None) -> str:
        if person is None:
            return "(nobody)"
        return names[person][1] if person in names else f"(deleted user {person})"

    for fact in facts:
        print(f"v{fact.originator_version}  {utc(fact.timestamp)}  {type(fact).__name__}"
              f"  by {who(fact_by(fact))}")
        for name, value in fact_changes(fact).items():
            shown = (", ".join(map(who, value)) if name == "participants"
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
    app, db = stores(settings)
    log_ = Log(app.recorder, app.mapper)
    for view in chosen:
        with tqdm(desc=f"replay {view.name}", unit="fact", total=log_.head()) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            rebuilt = rebuild(db, log_, view, progress=advance)
        print(f"{view.name}: rebuilt to position {rebuilt} and swapped in")
    app.close()
    db.close()
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

    app, db = stores(settings)
    try:
        done = write(app, db, path)
    finally:
        app.close()
        db.close()
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

    app, db = stores(settings)
    try:
        check_empty(app, db)
        expected = verify(path)
        check_empty(app, db)  # still, after a check that can take a while
        load(app, db, path, expected)
    except TransferError as exc:
        return fail("import", str(exc), 1)
    finally:
        app.close()
        db.close()
    rows = ", ".join(f"{count} {table}" for table, count in expected.rows.items())
    print(f"imported {expected.facts} facts and {rows} from {path}")
    return replay(settings, argparse.Namespace(view=None))
def operator(settings: Settings, args: argparse.Namespace) -> int:
    """Grants and revocations are facts on the account (audited, replayed with the rest of
    the store); `list` shows them beside the accounts ALPHABET_OPERATORS names."""
    from uuid import UUID

    from projections.people import People

    app, db = stores(settings)
    try:
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
    finally:
        app.close()
        db.close()


def worker(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.kafka_url:
        return fail("worker", "it needs ALPHABET_KAFKA_URL (e.g. kafka://localhost:9092); "
                    "without Kafka, `alphabet serve` runs mail and reminders itself")
    from alphabet import wiring
    from alphabet.worker import run_worker  # faust is imported only by this command

    wiring.migrate(settings)
    run_worker(settings)
    return 0


def parser() -> Parser:
    top = Parser(prog="alphabet", description="Alphabet Events backend")
    top.add_argument("--version", action=Version)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("serve", help="serve the HTTP API (and run the views' follower)",
                              description="Serve the HTTP API, with the views' follower and "
                              "the mailer beside the workers; migrates first.")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on")
    run.add_argument("--port", type=port, default=8000, help="port to listen on")
    run.add_argument("--workers", type=at_least_one, default=1,
                     help="worker processes serving requests")
    run.add_argument("--access-log", action="store_true", help="log every request")
    run.set_defaults(func=serve)
    schema = commands.add_parser("migrate", help="create the tables where missing (idempotent)")
    schema.set_defaults(func=migrate)
    trail = commands.add_parser("history", help="print an event's audit trail")
    trail.add_argument("event_id", help="the event's id")
    trail.set_defaults(func=history)
    again = commands.add_parser("replay", help="rebuild read models from the event store")
    again.add_argument("view", nargs="?", help="one view (events, mail or reminders; "
                       "default: all)")
    again.set_defaults(func=replay)
    out = commands.add_parser("export", help="write the store to a file (JSON Lines with a "
                              "checksum)", description="Write the event store's facts in log "
                              "order, and the accounts, invitees and mail deliveries they cannot "
                              "give back, to a new file. The file holds personal data.")
    out.add_argument("file", help="the file to write (must not exist)")
    out.set_defaults(func=export)
    into = commands.add_parser("import", help="load an export into an empty store and rebuild "
                               "the views", description="Check an export whole (its SHA-256), "
                               "load it into an empty store, then rebuild every view.")
    into.add_argument("file", help="a file `alphabet export` wrote")
    into.set_defaults(func=import_)
    grants = commands.add_parser(
        "operator", help="grant or revoke an account's operator role, or list operators",
        description="Operators may delete any event and any account and replay the views "
        "from the console. Grants are facts on the account; ALPHABET_OPERATORS names more.")
    actions = grants.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("grant", "make the account an operator"),
                         ("revoke", "end the account's operator grant")):
        chosen = actions.add_parser(action, help=text)
        chosen.add_argument("username", help="the account's username")
    actions.add_parser("list", help="every operator: granted, and named by the setting")
    grants.set_defaults(func=operator)
    kafka = commands.add_parser("worker", help="run the Kafka relay and the faust agents")
    kafka.set_defaults(func=worker)
    return top


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    from alphabet.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:  # a variable, not an argument: --help would not help
        command.exit(USAGE_ERROR, f"{command.prog}: error: {exc}\n")
    try:
        result: int = args.func(settings, args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read our output has stopped reading (`alphabet history ID | head -1`): no
        # fault of ours, and nothing to report. Python would raise it again when it flushes
        # stdout at exit, so stdout goes to /dev/null first (the signal module's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
