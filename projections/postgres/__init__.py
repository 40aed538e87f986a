"""PostgreSQL for the state database, shared by every instance: the dialect (`dialect`), the
state database through psycopg 3 pools (`state`), async reads for Sanic (`reads`),
advisory-lock leases so that one process per role follows the log across all instances
(`leases`), the workers' turns to write (`turns`), and LISTEN for the NOTIFY eventsourcing
sends with every save and the views' follower sends when it has moved on (`listener`).

Imported only when ALPHABET_EVENT_STORE names a PostgreSQL database, so the embedded default
needs neither psycopg nor libpq. The names the composition root builds from are here too, so it
imports one package."""

from projections.postgres.dialect import POSTGRES, PostgresDialect, placeholders
from projections.postgres.leases import AdvisoryLeases, lock_key
from projections.postgres.listener import Listener, Notify, views_channel, views_notify
from projections.postgres.reads import PostgresReads
from projections.postgres.state import PostgresDatabase
from projections.postgres.turns import WriterTurns

__all__ = [
    "POSTGRES", "AdvisoryLeases", "Listener", "Notify", "PostgresDatabase", "PostgresDialect",
    "PostgresReads", "WriterTurns", "lock_key", "placeholders", "views_channel",
    "views_notify",
]
