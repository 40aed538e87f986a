"""The `alphabet` command: serve, migrate, history, replay, worker."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from uuid import UUID

from sanic import Sanic
from sanic.worker.loader import AppLoader
from tqdm import tqdm

from alphabet import wiring
from alphabet.app import create_app
from alphabet.settings import Settings, SettingsError
from domain.errors import DomainError
from domain.events import fact_by, fact_changes
from domain.presentation import utc
from projections.follower import Log
from projections.replay import replay as rebuild


def serve(settings: Settings, args: argparse.Namespace) -> int:
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, single_process=False,
                access_log=args.access_log, motd=False)
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Create the event store's and the state database's tables where missing (`serve` and
    `worker` do this too when they start); safe to run any number of times."""
    wiring.migrate(settings)
    where = (f"PostgreSQL database {settings.postgres.dbname!r} on {settings.postgres.host}"
             if settings.postgres else f"{settings.data_dir}/")
    print(f"schema up to date in {where}")
    return 0


def history(settings: Settings, args: argparse.Namespace) -> int:
    """A readable audit trail; people are shown by id (names live outside the facts)."""
    wiring.migrate(settings)
    app = wiring.event_application(settings)
    try:
        event_id = UUID(args.event_id)
    except ValueError:
        print(f"error: {args.event_id!r} is not an event id (a UUID)", file=sys.stderr)
        return 2
    try:
        facts = app.history(event_id)
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for fact in facts:
        print(f"v{fact.originator_version}  {utc(fact.timestamp)}  {type(fact).__name__}"
              f"  by {fact_by(fact)}")
        for name, value in fact_changes(fact).items():
            shown = utc(value) if hasattr(value, "astimezone") else value
            print(f"    {name}: {shown}")
    return 0


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild views from position 0 beside the live ones and swap them in; a running server
    keeps answering from the old tables until the swap."""
    chosen = [v for v in wiring.views(settings) if args.view in (None, v.name)]
    if not chosen:
        names = ", ".join(v.name for v in wiring.views(settings))
        print(f"error: no view named {args.view!r} (there is: {names})", file=sys.stderr)
        return 2
    wiring.migrate(settings)
    app = wiring.event_application(settings)
    db = wiring.state_database(settings)
    log = Log(app.recorder, app.mapper)
    for view in chosen:
        with tqdm(desc=f"replay {view.name}", unit="fact", total=log.head()) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            rebuilt = rebuild(db, log, view, progress=advance)
        print(f"{view.name}: rebuilt to position {rebuilt} and swapped in")
    app.close()
    db.close()
    return 0


def worker(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.kafka_url:
        print("error: alphabet worker needs ALPHABET_KAFKA_URL (e.g. kafka://localhost:9092); "
              "without Kafka, `alphabet serve` runs mail and reminders itself", file=sys.stderr)
        return 2
    from alphabet.worker import run_worker  # faust is imported only by this command

    wiring.migrate(settings)
    run_worker(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alphabet", description="Alphabet Events backend")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the HTTP API (and run the views' follower)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--access-log", action="store_true", help="log every request")
    run.set_defaults(func=serve)
    schema = commands.add_parser("migrate", help="create the tables where missing (idempotent)")
    schema.set_defaults(func=migrate)
    trail = commands.add_parser("history", help="print an event's audit trail")
    trail.add_argument("event_id")
    trail.set_defaults(func=history)
    again = commands.add_parser("replay", help="rebuild read models from the event store")
    again.add_argument("view", nargs="?", help="one view (default: all)")
    again.set_defaults(func=replay)
    kafka = commands.add_parser("worker", help="run the Kafka relay and the faust agents")
    kafka.set_defaults(func=worker)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        parser.error(str(exc))
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
