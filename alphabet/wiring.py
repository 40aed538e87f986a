"""Builds the long-lived objects from settings; each process (worker, follower, command) calls
these once. The backend is chosen here and nowhere else: SQLite files under the data dir by
default, PostgreSQL when ALPHABET_EVENT_STORE names a database (projections.postgres is
imported only then). It runs past 300 lines because it is the one composition root: every
constructor call of the product is here (a server worker's, with each blueprint's services, and
the managed processes' parts that alphabet.processes runs), and splitting it would make two
places that choose the backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

import redis
import redis.asyncio
from eventsourcing.application import AggregateNotFoundError

from alphabet.group_commit import GroupCommit, Turns
from alphabet.settings import Settings
from api import metrics
from api.auth import AuthServices, SigninPolicy
from api.batch import BatchServices
from api.changes import ChangesServices
from api.context import Commands, Gate
from api.events import EventsServices
from api.feeds import FeedsServices, FeedTexts
from api.freebusy import FreeBusyServices
from api.health import HealthServices
from api.lists import ListsServices
from api.metrics import MetricsServices
from api.operators import Operators, OperatorServices
from api.rendered import RenderedEvents
from api.rsvp import RsvpServices
from api.security import Tokens
from api.users import UsersServices
from api.websockets import SocketServices
from consumers.hub import Hub
from consumers.mail.counts import mail_counts
from consumers.mail.delivery import DELIVERY_SCHEMA, Mailer
from consumers.mail.dev_outbox import OutboxTransport, erase_outbox
from consumers.mail.outbox import MailQueue
from consumers.mail.transports import SmtpTransport, Transport
from consumers.messages import LoadEvent, MessageMaker
from consumers.notify import LocalTail, RedisRelay, prime
from consumers.remind import RemindersView, SeriesReminders
from consumers.rsvp import RsvpLinks
from domain.accounts import Accounts
from domain.application import EventsApplication
from domain.events import Event
from domain.writing import WriteNow, Writer
from projections import faults
from projections.database import (
    SQLITE,
    AsyncReads,
    Dialect,
    InlineReads,
    SqliteDatabase,
    StateDatabase,
)
from projections.doorbell import Doorbell
from projections.events_queries import EventsReader
from projections.events_view import EventsView, OwnedEvents
from projections.faults import Faults
from projections.feeds import CalendarFeeds, FeedReader
from projections.follower import Alone, Follower, Leases, Log, View, index_statements
from projections.people import MOVE_NAMES_COUNT, People, PeopleReader
from projections.sessions import Sessions

if TYPE_CHECKING:
    from projections.postgres import Listener

log = logging.getLogger(__name__)

# How often a follower looks at the log unasked. Every save wakes the followers (on SQLite
# through the data dir's doorbell, on PostgreSQL through NOTIFY), so this is only a safety net
# (a save by a process that does not ring, such as an `alphabet` command); on PostgreSQL it is
# also the cadence at which a standby tries to take over a role whose holder died.
SQLITE_POLL_SECONDS = 5.0
POSTGRES_POLL_SECONDS = 1.0
# A worker's own tail of the log holds no lease, so it needs only the safety net.
TAIL_POLL_SECONDS = 5.0


# eventsourcing's aggregate cache: a command reads the cached aggregate plus whatever facts
# were stored after it (fast-forward, one indexed read), instead of decoding its whole
# history: 84 µs instead of 596 µs for an event with 21 facts. Each read is a deep copy, so
# a refused or lost command leaves the cache as it was.
AGGREGATE_CACHE = {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": "y"}


def event_application(settings: Settings, *, create_tables: bool = False,
                      writer: Writer = WriteNow) -> EventsApplication:
    """The application on its store, saving with `writer` (the server's workers group their
    writes: see `services`). On PostgreSQL only `migrate` creates the tables, under a lock, so
    processes starting together never race to create them."""
    if settings.postgres:
        return EventsApplication(writer=writer, env={
            **settings.postgres.eventsourcing_env(),
            **AGGREGATE_CACHE,
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "8",
            "CREATE_TABLE": "y" if create_tables else "n",
        })
    settings.prepare_data_dir()
    return EventsApplication(writer=writer, env={
        **AGGREGATE_CACHE,
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.event_store_path),
        "SQLITE_LOCK_TIMEOUT": "30",
    })


def dialect(settings: Settings) -> Dialect:
    if settings.postgres:
        from projections.postgres import POSTGRES

        return POSTGRES
    return SQLITE


def views(settings: Settings) -> list[View]:
    return [EventsView(dialect(settings)), *consumer_views(settings)]


def consumer_views(settings: Settings) -> list[View]:
    """Mail and reminders: followed inside `alphabet serve`, or by the faust agents of
    `alphabet worker` when Kafka is configured."""
    return [MailQueue(), RemindersView(settings.reminder_minutes)]


def series_reminders(settings: Settings, app: EventsApplication) -> SeriesReminders:
    """What the reminder clock asks a series: its occurrences due, the next one's time."""
    return partial(app.series_reminders, before=timedelta(minutes=settings.reminder_minutes))


def served_views(settings: Settings) -> list[View]:
    return [EventsView(dialect(settings))] if settings.kafka_url else views(settings)


def state_database(settings: Settings, also: Sequence[str] = ()) -> StateDatabase:
    """The state database with its tables (and every view's, and `also`: a process's own)
    created where missing."""
    db = opened_state(settings)
    db.create_schema([*tables(settings), *indexes(settings), *also])
    return db


def opened_state(settings: Settings) -> StateDatabase:
    """The state database as it is, nothing created."""
    if settings.postgres:
        from projections.postgres import PostgresDatabase

        return PostgresDatabase(settings.postgres.conninfo, settings.postgres.schema)
    settings.prepare_data_dir()
    return SqliteDatabase(settings.state_path)


def tables(settings: Settings) -> list[str]:
    """Every table, made under the state database's schema lock: the mailer's delivery table
    too, which two `alphabet worker`s starting at once had both created (PostgreSQL's CREATE
    TABLE IF NOT EXISTS collides then: a unique violation on pg_type, seen in CI)."""
    return [faults.SCHEMA, DELIVERY_SCHEMA, *MOVE_NAMES_COUNT,
            *(s for view in views(settings) for s in view.schema())]


def indexes(settings: Settings) -> list[str]:
    return [s for view in views(settings) for s in index_statements(view)]


def migrate(settings: Settings) -> None:
    """Create whatever is missing of the state database's tables (and of their columns) and
    the event store's; idempotent, and one process at a time across instances. The columns a
    table made by an earlier release lacks are added before the indexes are made, since some
    index them."""
    db = opened_state(settings)
    try:
        with db.exclusive("migrate"):
            db.create_schema(tables(settings))
            with db.write() as conn:
                EventsView(dialect(settings)).add_columns(conn)
            db.create_schema(indexes(settings))
            event_application(settings, create_tables=True).close()
    finally:
        db.close()


def async_reads(settings: Settings) -> AsyncReads:
    """How the event loop reads: on PostgreSQL through the worker's async pool, on SQLite
    inline (projections.database.InlineReads says why)."""
    if settings.postgres:
        from projections.postgres import PostgresReads

        return PostgresReads(settings.postgres.conninfo)
    return InlineReads(settings.state_path, settings.event_store_path)


def leases(settings: Settings) -> Leases:
    """Who runs each role: on PostgreSQL one process across all instances (advisory locks);
    embedded, the one serving process tree."""
    if settings.postgres:
        from projections.postgres import AdvisoryLeases

        return AdvisoryLeases(settings.postgres.conninfo, settings.postgres.schema)
    return Alone()


def writer_turns(settings: Settings) -> Turns | None:
    """On PostgreSQL the workers of every instance take turns to write (alphabet.group_commit);
    SQLite's, a few on one machine, race and redo what they lose."""
    if settings.postgres:
        from projections.postgres import WriterTurns

        return WriterTurns(settings.postgres.conninfo, settings.postgres.schema)
    return None


def poll_seconds(settings: Settings) -> float:
    return POSTGRES_POLL_SECONDS if settings.postgres else SQLITE_POLL_SECONDS


def doorbell(settings: Settings, wake: Callable[[], None] = lambda: None) -> Doorbell | None:
    """On SQLite, the data dir's doorbell: rung after a save, and listened to by whoever waits
    for one; None on PostgreSQL, where the store NOTIFYs by itself."""
    return None if settings.postgres else Doorbell(settings.data_dir / "wake", wake)


def ringing(wake: Callable[[], None], bell: Doorbell | None) -> Callable[[], None]:
    """`wake` for this process, and the doorbell for the others (on SQLite)."""
    if bell is None:
        return wake

    def both() -> None:
        wake()
        bell.ring()

    return both


def listen(settings: Settings, app: EventsApplication, wake: Callable[[], None],
           bell: Doorbell | None = None) -> Listener | Doorbell:
    """Something that calls `wake` whenever a fact is saved anywhere (its `start()` listens
    from a thread, `run_async()` from the event loop): LISTEN on PostgreSQL, the data dir's
    doorbell on SQLite (`bell`, the one this process rings, if given: its own rings then do
    not wake it again)."""
    if not settings.postgres:
        if bell is None:
            return Doorbell(settings.data_dir / "wake", wake)
        bell.wake = wake
        return bell
    from eventsourcing.postgres import PostgresApplicationRecorder

    from projections.postgres import Listener

    assert isinstance(app.recorder, PostgresApplicationRecorder)
    return Listener(settings.postgres.conninfo, app.recorder.channel_name, wake)


def follower(settings: Settings, app: EventsApplication, db: StateDatabase,
             shared: Leases | None = None, bell: Doorbell | None = None) -> Follower:
    """The views' follower (supervised, its faults recorded, saying when it has moved on: it
    rings `bell` on SQLite, NOTIFYs on PostgreSQL) or, without `shared`, a worker's means to
    catch a view up for ?min_position."""
    advanced: Callable[[], None] = bell.ring if bell is not None else (lambda: None)
    if settings.postgres and shared is not None:
        from projections.postgres import Notify

        advanced = Notify(settings.postgres.conninfo, settings.postgres.schema)
    return Follower(db, Log(app.recorder, app.mapper, keep_last=True), served_views(settings),
                    poll_seconds=poll_seconds(settings), leases=shared,
                    faults=Faults(db) if shared is not None else None, advanced=advanced)


def views_moved(settings: Settings, wake: Callable[[], None]) -> Listener | Doorbell:
    """Something that calls `wake` (from a thread of its own, once started) whenever the
    views' follower has moved on: the data dir's doorbell on SQLite (which every save rings
    too), LISTEN on the follower's channel on PostgreSQL."""
    if not settings.postgres:
        return Doorbell(settings.data_dir / "wake", wake)
    from projections.postgres import Listener, views_channel

    return Listener(settings.postgres.conninfo, views_channel(settings.postgres.schema), wake)


def event_loader(app: EventsApplication) -> LoadEvent:
    """The event at a version (or its latest), for messages the notifier cannot derive."""

    def load(event_id: UUID, version: int | None) -> Event | None:
        try:
            found: Any = app.repository.get(event_id, version=version)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Event) else None

    return load


@dataclass
class Worker:
    """What one server worker holds open (its start and stop open and close these, and its
    notifier feeds the hub), and each blueprint's services built over them, by type
    (api.context.provided): a handler sees only its own blueprint's."""

    app: EventsApplication
    db: StateDatabase
    reads: AsyncReads
    log: Log
    follower: Follower
    people: People
    hub: Hub
    load_event: LoadEvent
    commands: Commands
    reader: EventsReader
    people_reader: PeopleReader
    blueprints: dict[type, object]


def worker(settings: Settings) -> Worker:
    """A worker's services. Its writes queue for one writer thread that saves many in one
    transaction (alphabet.group_commit); closing the application stops that thread."""
    app = event_application(settings, writer=partial(
        GroupCommit, on_batch=metrics.BATCHES.observe, turns=writer_turns(settings)))
    db = state_database(settings)
    secret = settings.secret()
    reads = async_reads(settings)
    log = Log(app.recorder, app.mapper)
    runner = follower(settings, app, db)
    people = People(db)
    people_reader = PeopleReader(reads)
    reader = EventsReader(reads, secret, db.dialect, events_table(app))
    rendered = RenderedEvents(people_reader)
    tokens = Tokens(secret, settings.access_token_minutes * 60,
                    settings.refresh_token_days * 86400)
    sessions = Sessions(db)
    # the events view alone: another view's fault is not the deletion's to fail with
    accounts = Accounts(app, people,
                        OwnedEvents(db, partial(runner.run_once, runner.named(EventsView.name))),
                        partial(erase_outbox, settings.outbox_dir))
    operators = Operators(settings.operators, app)
    commands = Commands()
    hub = Hub()
    load_event = event_loader(app)
    health = HealthServices(log, runner, reader, partial(faults.failing, reads))
    return Worker(
        app=app, db=db, reads=reads, log=log, follower=runner, people=people, hub=hub,
        load_event=load_event, commands=commands, reader=reader, people_reader=people_reader,
        blueprints={service.__class__: service for service in (
            Gate(tokens, people_reader),
            AuthServices(accounts, people_reader, sessions, tokens, SigninPolicy(
                per_pair=settings.signin_failures_per_account_and_address,
                per_account=settings.signin_failures_per_account,
                per_address=settings.signin_failures_per_address,
                window_seconds=settings.signin_window_seconds,
                trusted_proxies=settings.trusted_proxies,
                secret=secret,
            )),
            UsersServices(accounts, commands, people_reader, sessions, tokens, operators),
            EventsServices(app, commands, people, people_reader, reader, rendered, operators),
            BatchServices(app, commands, people, people_reader),
            FeedsServices(CalendarFeeds(db), FeedReader(reads, db.dialect), app,
                          settings.public_url, FeedTexts()),
            ListsServices(reader, rendered, people_reader, runner, app),
            SocketServices(tokens, people_reader, app, hub, log, load_event, people),
            ChangesServices(log, load_event, people, settings.sync_read_limit),
            RsvpServices(RsvpLinks(secret, settings.link_base), people, app, commands),
            FreeBusyServices(reader, people_reader),
            health,
            OperatorServices(operators, health, db, log),
            MetricsServices(log, reader, partial(mail_counts, reads.fetchall,
                                                 db.dialect.has_table)),
        )},
    )


def events_table(app: EventsApplication) -> str:
    """The event store's table, which the events reader reads the latest versions from."""
    recorder: Any = app.recorder  # both stores' recorders name their table so
    return str(recorder.events_table_name)


def notifications(settings: Settings, services: Worker) -> list[Coroutine[Any, Any, None]]:
    """What feeds this worker's sockets: Redis when configured (one notifier for everyone),
    else the worker's own tail of the log (woken by this worker's writes, and by every save:
    the doorbell on SQLite, LISTEN on PostgreSQL). A write here rings the doorbell too, for
    the views' follower and the other workers."""
    bell = doorbell(settings)
    if settings.redis_url:
        services.commands.wake = ringing(lambda: None, bell)
        relay = RedisRelay(redis.asyncio.from_url(settings.redis_url), settings.redis_namespace,
                           services.hub, services.log.head)
        return [relay.run()]
    tail = LocalTail(services.log, MessageMaker(services.load_event, services.people.names),
                     services.hub, poll=TAIL_POLL_SECONDS, faults=Faults(services.db))
    services.commands.wake = ringing(tail.wake, bell)
    return [tail.run(), listen(settings, services.app, tail.wake, bell).run_async()]


def prime_notifier(settings: Settings) -> None:
    if settings.redis_url:
        app = event_application(settings)
        prime(redis.Redis.from_url(settings.redis_url), settings.redis_namespace,
              Log(app.recorder, app.mapper).head())
        app.close()


def mailer(settings: Settings, app: EventsApplication, db: StateDatabase) -> Mailer:
    people = People(db)
    transport: Transport = (SmtpTransport(settings.smtp_url) if settings.smtp_url
                            else OutboxTransport(settings.outbox_dir, people.addresses))
    return Mailer(db, transport, event_loader(app), people.names, people.addresses,
                  settings.mail_from, settings.message_domain,
                  links=RsvpLinks(settings.secret(), settings.link_base))
