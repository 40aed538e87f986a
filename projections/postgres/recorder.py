"""The event store's recorder on PostgreSQL: each save is one statement, a call of a function
that takes the table's lock, notifies and inserts.

eventsourcing saves in a pipelined transaction (BEGIN, SET LOCAL lock_timeout, LOCK TABLE,
NOTIFY, INSERT, a sync to surface a conflict, COMMIT): two round trips, seven statements each
composed and converted again in Python. Its own one-statement path (POSTGRES_ENABLE_DB_FUNCTIONS)
leaves the LOCK TABLE out of its function, so two transactions' facts could commit out of
position order and a follower reading past the later one would never see the earlier
(eventsourcing 9.5's comment on `_lock_table` explains the lock). This function keeps the lock:
the statement's own transaction holds it until the facts commit. It has a name of its own, so a
release that still creates eventsourcing's lock-free function never replaces it."""

from __future__ import annotations

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Identifier

FUNCTION = "alphabet_insert_events"


class LockingRecorder(PostgresApplicationRecorder):
    """Chosen by APPLICATION_RECORDER_TOPIC, with POSTGRES_ENABLE_DB_FUNCTIONS so that
    eventsourcing calls the function; `alphabet migrate` creates it with the tables."""

    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        name = f"{FUNCTION}_{self.datastore.originator_id_type}"
        self.pg_function_name_insert_events = name
        self.sql_invoke_pg_function_insert_events = SQL(
            "SELECT * FROM {schema}.{function}((%s))").format(schema=schema,
                                                              function=Identifier(name))
        self.sql_create_statements[self.create_insert_function_statement_index] = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t "
            "(originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(schema=schema, function=Identifier(name), table=table,
                 event=Identifier(self.stored_event_type_name),
                 lock_timeout=self.datastore.lock_timeout,
                 channel=Identifier(self.channel_name))
