"""A typed client generated from the served document by openapi-python-client (into a
temporary folder, nothing kept) drives a whole story: sign up, create, list with a cursor,
search, update with If-Match, batch, history, delete. If the document misdescribes anything a
generated client relies on, this is where a user would meet it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.conftest import Server

PACKAGE = "alphabet_events_client"
# Each module the generator writes, as api/<tag>/<operationId>: one per operation.
OPERATIONS = {
    "auth": {"signup", "signin", "refresh", "token_refresh", "signout"},
    "users": {"me", "change_me", "delete_me", "get_user", "change_user", "delete_user"},
    "events": {"create_event", "get_event", "get_event_ics", "change_event", "patch_event",
               "delete_event", "event_history", "respond_to_event"},
    "lists": {"list_events", "search_events", "events_ics"},
    "changes": {"event_changes"},
    "occurrences": {"instances", "split"},
    "rsvp": {"rsvp"},
    "freebusy": {"freebusy"},
    "batch": {"create_batch", "change_batch", "delete_batch"},
    "feeds": {"create_feed", "revoke_feed", "calendar_feed"},
    "health": {"healthz", "readyz"},
    "operators": {"operator_status", "replay_views"},
    "metrics": {"metrics"},
}


@pytest.fixture(scope="module")
def generated(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("generated")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "openapi-python-client"), "generate",
         "--url", f"{server.url}/docs/openapi.json", "--meta", "none",
         "--output-path", str(folder / PACKAGE), "--fail-on-warning"],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        yield folder / PACKAGE
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def operation(tag: str, name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


def test_the_generated_client_has_one_function_per_operation_named_for_it(
    generated: Path
) -> None:
    found = {tag.name: {module.stem for module in tag.glob("*.py") if module.stem != "__init__"}
             for tag in (generated / "api").iterdir() if tag.is_dir()}
    assert found == OPERATIONS


def when(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_a_whole_story_through_the_generated_client(generated: Path, server: Server) -> None:
    client_module: Any = importlib.import_module(f"{PACKAGE}.client")
    models: Any = importlib.import_module(f"{PACKAGE}.models")
    anonymous = client_module.Client(base_url=server.url, raise_on_unexpected_status=True)
    name = f"generated_{uuid4().hex[:10]}"
    signed_up = operation("auth", "signup").sync(client=anonymous, body=models.SignupBody(
        username=name, email=f"{name}@example.com", password="correct horse battery"))
    assert isinstance(signed_up, models.SignupOut), signed_up
    assert signed_up.user.username == name
    refreshed = operation("auth", "token_refresh").sync(
        client=anonymous, body=models.RefreshBody(refresh=signed_up.refresh))
    assert isinstance(refreshed, models.TokenPair), refreshed
    me = client_module.AuthenticatedClient(base_url=server.url, token=refreshed.access,
                                           raise_on_unexpected_status=True)
    assert operation("users", "me").sync(client=me).user.id == signed_up.user.id

    created = operation("events", "create_event").sync_detailed(client=me, body=(
        models.EventCreateBody(name="Kick-off", starting_time=when(2), end_time=when(3),
                               location="Generated Harbour", participants=[])))
    assert created.status_code == 201, created.content
    event = created.parsed.event
    assert created.headers["location"] == f"/api/event/{event.id}"

    batch = operation("batch", "create_batch").sync_detailed(client=me, body=[
        models.EventCreateBody(name=f"Batch {i}", starting_time=when(4 + i),
                               end_time=when(5 + i), location="Generated Harbour")
        for i in range(3)])
    assert batch.status_code == 201, batch.content
    assert isinstance(batch.parsed, models.EventsOut)  # no KeyError on a missing "next"
    batch_ids = [item.id for item in batch.parsed.events]

    seen: list[str] = []
    page_module = operation("lists", "list_events")
    position = int(batch.headers["x-position"])
    kwargs: dict[str, Any] = {"limit": 2, "location": "Generated Harbour",
                              "min_position": position}
    while True:
        page = page_module.sync(client=me, **kwargs)
        assert isinstance(page, models.EventList), page
        seen += [item.id for item in page.events]
        if not page.next_:
            break
        kwargs["cursor"] = page.next_
    assert seen == [event.id, *batch_ids]

    found = operation("lists", "search_events").sync(client=me, location="generated harbour",
                                                     min_position=position)
    assert [item.id for item in found.events] == seen

    read = operation("events", "get_event").sync_detailed(UUID(event.id), client=me)
    stale_etag = read.headers["etag"]
    patched = operation("events", "patch_event").sync_detailed(
        UUID(event.id), client=me, body=models.EventChangeBody(name="Kick-off, moved"),
        if_match=stale_etag)
    assert patched.status_code == 200, patched.content
    assert patched.parsed.event.name == "Kick-off, moved"
    refused = operation("events", "change_event").sync_detailed(
        UUID(event.id), client=me, body=models.EventChangeBody(location="Elsewhere"),
        if_match=stale_etag)
    assert refused.status_code == 412
    assert isinstance(refused.parsed, models.ErrorOut)
    assert refused.parsed.error.code == "version_mismatch"

    changed = operation("batch", "change_batch").sync(client=me, body=[
        models.BatchChangeItem(id=UUID(item_id), location="Generated Pier")
        for item_id in batch_ids])
    assert {item.location for item in changed.events} == {"Generated Pier"}

    trail = operation("events", "event_history").sync(UUID(event.id), client=me)
    assert [entry.type_ for entry in trail.history] == ["Created", "Updated"]

    deleted = operation("events", "delete_event").sync_detailed(UUID(event.id), client=me)
    assert deleted.status_code == 200, deleted.content
    gone = operation("batch", "delete_batch").sync(client=me,
                                                   body=[UUID(i) for i in batch_ids])
    assert len(gone.events) == 3
    assert operation("events", "get_event").sync_detailed(UUID(event.id),
                                                          client=me).status_code == 410
