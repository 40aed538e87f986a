"""What the event loop reads, on each backend's real store: a view row comes back with the
store's latest version for it (how GET one event knows the row is current), and cached names
follow renames and erasures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from alphabet import wiring
from alphabet.settings import Settings
from alphabet.wiring import Worker
from projections.events_queries import Filters, Moved
from tests.conftest import Backend
from tests.unit.fixtures import fields


@pytest.fixture(scope="module")
def settings(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    found = Settings.from_env({"ALPHABET_DATA_DIR": str(tmp_path_factory.mktemp("data")),
                               **backend.env})
    wiring.migrate(settings=found)
    return found


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Worker]:
    built = wiring.worker(settings)
    await built.reads.open()
    yield built
    await built.reads.close()
    built.app.close()
    built.db.close()


async def test_a_view_row_comes_with_the_stores_latest_version_for_it(services: Worker) -> None:
    start = datetime.now(UTC) + timedelta(days=3)
    created = services.app.create_event(
        owner_id="owner-1", **fields(starting_time=start, end_time=start + timedelta(hours=1)))
    event_id = created.aggregates[0].id
    services.follower.run_once()
    row = await services.reader.current(str(event_id))
    assert row is not None and (row["version"], row["latest"]) == (1, 1)

    services.app.update_event(event_id, by="owner-1", now=datetime.now(UTC),
                              expected_version=None, changes={"name": "Renamed"})
    lagging = await services.reader.current(str(event_id))
    assert lagging is not None and (lagging["version"], lagging["latest"]) == (1, 2)
    services.follower.run_once()
    caught_up = await services.reader.current(str(event_id))
    assert caught_up is not None and (caught_up["version"], caught_up["latest"]) == (2, 2)
    assert await services.reader.current("00000000-0000-0000-0000-000000000000") is None


def viewed(services: Worker, name: str, days: int) -> list[str]:
    """Three events named `name 0`..`name 2`, `days` ahead, applied to the view."""
    start = datetime.now(UTC) + timedelta(days=days)
    ids = [str(services.app.create_event(
        owner_id="owner-1", **fields(name=f"{name} {n}", starting_time=start,
                                     end_time=start + timedelta(hours=1))).aggregates[0].id)
           for n in range(3)]
    services.follower.run_once()
    return ids


async def test_lookups_asked_at_once_each_get_their_own_row(services: Worker) -> None:
    """On PostgreSQL the lookups waiting together go out as one statement; each must still get
    its own row, or None."""
    ids = viewed(services, "Lookup", days=3)
    missing = "00000000-0000-0000-0000-000000000001"
    asked = [ids[0], ids[1], missing, ids[0], ids[2]]
    rows = await asyncio.gather(*(services.reader.current(event_id) for event_id in asked))
    assert [row and (row["id"], row["name"]) for row in rows] == [
        (ids[0], "Lookup 0"), (ids[1], "Lookup 1"), None, (ids[0], "Lookup 0"),
        (ids[2], "Lookup 2")]


async def test_a_page_reads_keys_and_its_whole_rows_only_at_the_versions_it_read(
        services: Worker) -> None:
    """Lists read the keys of a page, then the whole rows of events a worker has no text for;
    an event that changed between the two reads makes the page be read again."""
    ids = viewed(services, "Paged", days=400)
    page = await services.reader.page(Filters(q="Paged"), None, 10)
    assert sorted(row["id"] for row in page.rows) == sorted(ids)
    assert "name" not in list(page.rows[0].keys())
    whole = await services.reader.complete(page.rows)
    assert [row["id"] for row in whole] == [row["id"] for row in page.rows]
    assert {row["name"] for row in whole} == {"Paged 0", "Paged 1", "Paged 2"}
    services.app.update_event(UUID(ids[1]), by="owner-1", now=datetime.now(UTC),
                              expected_version=None, changes={"name": "Paged again"})
    services.follower.run_once()
    with pytest.raises(Moved):
        await services.reader.complete(page.rows)


async def test_cached_names_follow_a_rename_and_an_erasure(services: Worker) -> None:
    services.people.add_user("user-1", "alice", "alice@example.com", "x", "2031-01-01")
    [invitee] = services.people.resolve(["guest@example.com"])
    names = services.people_reader.names
    assert (await names(["user-1", invitee, "nobody"])) == {
        "user-1": ("user", "alice"), invitee: ("invitee", "guest@example.com")}
    services.people.update("user-1", {"username": "alicia"}, "2031-01-02")
    assert (await names(["user-1"])) == {"user-1": ("user", "alicia")}
    services.people.erase("user-1")
    assert (await names(["user-1", invitee])) == {
        invitee: ("invitee", "guest@example.com")}


async def test_a_signed_in_account_follows_a_rename_and_an_erasure(services: Worker) -> None:
    services.people.add_user("user-2", "bob", "bob@example.com", "x", "2031-01-01")
    reader = services.people_reader
    account, count = await reader.signed_in("user-2")
    assert account is not None and account.username == "bob"
    assert await reader.signed_in("user-2") == (account, count)
    services.people.update("user-2", {"username": "robert"}, "2031-01-02")
    renamed, later = await reader.signed_in("user-2")
    assert renamed is not None and renamed.username == "robert" and later > count
    services.people.erase("user-2")
    assert (await reader.signed_in("user-2"))[0] is None


async def test_reads_go_on_when_postgresql_ends_the_connections_a_worker_keeps(
        services: Worker, backend: Backend) -> None:
    """A restart of PostgreSQL (or an administrator) ends every session of the database; the
    worker's next reads open new connections instead of failing on the dead ones."""
    if backend.url is None:
        pytest.skip("SQLite reads a file: there is no connection to end")
    others = ("FROM pg_stat_activity WHERE datname = current_database() "
              "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    [reached, *_] = await asyncio.gather(
        *(services.reader.position("events") for _ in range(8)))
    ended = backend.rows(Path(), f"SELECT pg_terminate_backend(pid) {others}")
    assert ended and all(row[0] for row in ended)
    while backend.rows(Path(), f"SELECT 1 {others}"):
        await asyncio.sleep(0.05)
    assert await asyncio.gather(*(services.reader.position("events") for _ in range(8))) \
        == [reached] * 8
