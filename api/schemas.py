"""Request and response shapes: pydantic models validate bodies field by field (so a 422 can
name every bad field) and give the OpenAPI document its schemas.

Over ~300 lines on purpose: it is a catalogue of small models, a few lines each, that share
their validators and the OpenAPI 3.0 base; split by request and answer, the pairs a route
uses (a body and its answer) would sit in two files."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from consumers.messages import KINDS
from domain.events import MAX_PARTICIPANTS, MAX_TEXT
from domain.recurrence import MAX_LINE, MAX_LINES
from domain.zones import DEFAULT_ZONE

USERNAME_RULE = "3-150 letters, digits and _.-+ (no @)"
USERNAME_PATTERN = r"^[\w.+-]{3,150}$"


def is_username(text: str) -> bool:
    """Whether any account could have this name: only such a text is ever looked up (a
    database need not be asked about, say, a NUL byte, which PostgreSQL cannot even hold)."""
    return re.fullmatch(USERNAME_PATTERN, text) is not None


def _email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address ({exc})") from None


def _participant(value: str) -> str:
    """An entry with @ is an outside invitee's address; any other is a username."""
    if "@" in value:
        return _email(value)
    if not is_username(value):
        raise ValueError(f"not a username ({USERNAME_RULE}) nor an email address")
    return value


Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
# One line of text: a line break or other control character in a name breaks mail headers
# and calendar files.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT,
                                        pattern=r"^[^\x00-\x1f\x7f]*$")]
Participant = Annotated[str, StringConstraints(min_length=1, max_length=254),
                        AfterValidator(_participant)]
Participants = Annotated[list[Participant], Field(max_length=MAX_PARTICIPANTS)]
# RFC 5545 lines as Google Calendar's API takes them; the domain (domain.recurrence) says
# what is wrong with a rule, under the field `recurrence`.
RecurrenceLine = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LINE,
                                                  pattern=r"^[^\x00-\x1f\x7f]*$")]
Recurrence = Annotated[list[RecurrenceLine], Field(
    max_length=MAX_LINES, description="one RRULE line and any EXDATE/RDATE lines (RFC 5545), "
    "expanded in the event's time zone from starting_time; [] for a single event",
    json_schema_extra={"example": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"]})]
# Checked against the zone database by the domain (domain.zones), which names the field.
TimeZone = Annotated[str, Field(max_length=64, description="an IANA time zone name "
                                "(Europe/Berlin); times are shown in it as local_start/local_end",
                                json_schema_extra={"example": "Europe/Berlin"})]


class OpenAPI30(GenerateJsonSchema):
    """The docs declare OpenAPI 3.0.3 (sanic-ext's fixed version), which has no "null" type:
    an optional field is written with `nullable` instead."""

    def nullable_schema(self, schema: Any) -> JsonSchemaValue:
        """A model or null: beside a $ref, `nullable` does not reach into the referenced
        schema (validators such as openapi-core refuse null there), so null is an
        alternative of its own."""
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"anyOf": [inner, {"enum": [None], "nullable": True}]}
        return {**inner, "nullable": True}


class OpenAPI30Schemas:
    """Mixed into every model the docs show, so sanic-ext gets 3.0-shaped schemas."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("schema_generator", OpenAPI30)
        schema: dict[str, Any] = super().model_json_schema(*args, **kwargs)  # type: ignore[misc]
        return schema


class Schema(OpenAPI30Schemas, BaseModel):
    pass


class Body(Schema):
    """Strict about types (a number is not a time), lenient about nothing else: unknown fields
    are refused so a misspelt field never passes silently."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ChangeBody(Body):
    """Fields to change: a field left out keeps its value, and null is refused (naming the
    field) rather than read as "leave it", so a client that means to clear a field learns
    it cannot. The schema says so too: the fields are optional, never nullable."""

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


def kept() -> Any:
    """The default of a field a change may leave out: None in Python (so the field's type
    is `X | None`), and in the schema neither a default nor null."""
    return Field(None, json_schema_extra=_never_null)


def _never_null(schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    schema.pop("nullable", None)
    if "anyOf" in schema:  # pydantic's own JSON Schema writes X | None as anyOf
        schema["anyOf"] = [s for s in schema["anyOf"] if s != {"type": "null"}]


class SignupBody(Body):
    username: Username
    email: Email
    password: Password


class SigninBody(Body):
    username: str
    password: str


class RefreshBody(Body):
    refresh: str


class UserChangeBody(ChangeBody):
    username: Username | None = kept()
    email: Email | None = kept()
    password: Password | None = kept()
    current_password: str | None = kept()


class EventCreateBody(Body):
    name: Text
    starting_time: AwareDatetime
    end_time: AwareDatetime
    location: Text
    participants: Participants = []
    recurrence: Recurrence = []
    time_zone: TimeZone = DEFAULT_ZONE


class EventChangeBody(ChangeBody):
    name: Text | None = kept()
    starting_time: AwareDatetime | None = kept()
    end_time: AwareDatetime | None = kept()
    location: Text | None = kept()
    participants: Participants | None = kept()
    recurrence: Recurrence | None = kept()
    time_zone: TimeZone | None = kept()


class ResponseBody(Body):
    """A participant's answer to an event's invitation (Google Calendar's responseStatus,
    but for needsAction, which is where every answer starts and no one answers)."""

    response: Literal["accepted", "declined", "tentative"]


class BatchChangeItem(EventChangeBody):
    id: UUID


MAX_BATCH = 1000


class BatchCreates(OpenAPI30Schemas, RootModel[Annotated[list[EventCreateBody],
                                                         Field(max_length=MAX_BATCH)]]):
    """POST /api/batch_events/: the events to create."""


class BatchChanges(OpenAPI30Schemas, RootModel[Annotated[list[BatchChangeItem],
                                                         Field(max_length=MAX_BATCH)]]):
    """PUT /api/batch_events/: each item is an id and the fields to change."""


class BatchIds(OpenAPI30Schemas, RootModel[Annotated[list[UUID], Field(max_length=MAX_BATCH)]]):
    """DELETE /api/batch_events/: the ids of the events to delete."""


class UserOut(Schema):
    id: str
    username: str
    email: str | None = Field(None, description="only in your own account")
    created_at: datetime
    updated_at: datetime


class UserEnvelope(Schema):
    user: UserOut


class UserChanged(UserEnvelope):
    access: str | None = Field(None, description="only when the password changed: every "
                               "other session has ended, and this is a fresh pair for yours")
    refresh: str | None = Field(None, description="as `access`")


class TokenPair(Schema):
    access: str
    refresh: str


class SignupOut(TokenPair):
    user: UserOut


class Attendee(Schema):
    participant: str = Field(description="as in participants")
    response: Literal["needs_action", "accepted", "declined", "tentative"]


class EventOut(Schema):
    id: str
    name: str
    starting_time: datetime
    end_time: datetime
    time_zone: str = Field(description="the IANA time zone the event is shown in")
    local_start: datetime = Field(description="starting_time with the offset of time_zone")
    local_end: datetime = Field(description="end_time with the offset of time_zone")
    location: str
    participants: list[str] = Field(
        description="usernames, and invitees' addresses (shown to the owner only; "
        'others see "invitee")'
    )
    attendees: list[Attendee] = Field(
        description="each participant's response, in the order of participants")
    owner: str
    owner_username: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    recurrence: list[str] | None = Field(None, description="a series' RFC 5545 lines (absent "
                                         "for a single event and for an occurrence)")
    recurring_event_id: str | None = Field(None, description="an occurrence's series")
    original_start: datetime | None = Field(None, description="an occurrence's start by its "
                                            "series' rule (its id's second part)")


class EventEnvelope(Schema):
    event: EventOut


class EventList(Schema):
    events: list[EventOut]
    next: str | None = Field(description="cursor of the next page, or null on the last")


def _message_kinds(schema: dict[str, Any]) -> None:
    """Whatever kinds the WebSocket messages have, so a new kind is documented with them."""
    schema["enum"] = sorted(set(KINDS.values()))


class ChangeOut(Schema):
    position: int = Field(description="where the change is in the event log: the write's "
                          "X-Position, and the `position` of its WebSocket message")
    event_id: str
    type: str = Field(description="the kind of change, as the WebSocket message's `type`",
                      json_schema_extra=_message_kinds)
    version: int = Field(description="the event's version after the change")
    event: EventOut | None = Field(description="the event after the change, shown as GET one "
                                   "shows it to you; null for a deletion")
    instance_id: str | None = Field(None, description="the occurrence of a series the change "
                                    "is about (absent for the whole event); `event` is then "
                                    "that occurrence, or null once it is cancelled")


class ChangesOut(Schema):
    changes: list[ChangeOut]
    next_after: int = Field(description="pass as ?after= for the changes that follow (the "
                            "log's head once there are no more)")


class BusyInterval(Schema):
    start: datetime
    end: datetime


class BusyCalendar(Schema):
    busy: list[BusyInterval] = Field(description="in order, overlapping and touching events "
                                     "joined, cut to the window")


class CalendarError(Schema):
    error: str = Field(description='"not_found": no account has this username')


class FreeBusyOut(Schema):
    calendars: dict[str, BusyCalendar | CalendarError] = Field(
        description="by each username asked for")


class EventsOut(Schema):
    """A batch's answer: every event it wrote, in the order given (no cursor: nothing to page)."""

    events: list[EventOut]


class EventWritten(Schema):
    message: str
    event: EventOut


class Message(Schema):
    message: str


class CalendarFeed(Schema):
    url: str = Field(description="the feed's address for calendar apps (no header needed); "
                                 "whoever holds it can read your calendar")


class Health(Schema):
    status: str


class ViewLag(Schema):
    position: int
    lag: int


class Fault(Schema):
    name: str = Field(description="the view (events, mail, reminders) or loop (mailer, "
                                  "reminder clock, notifications, notifier) that fails")
    position: int | None = Field(description="the log position of the fact it cannot apply")
    error: str
    first_seen: str
    last_seen: str
    attempts: int = Field(description="failures in a row at this position, each retried "
                                      "after a backoff")


class Readiness(Schema):
    """Further fields may say more about each view or about what is wrong."""

    model_config = ConfigDict(extra="allow")
    status: str = Field(description='"ready", or what is wrong ("failing": see faults)')
    position: int | None = Field(None, description="the event log's head")
    views: dict[str, ViewLag] | None = None
    faults: list[Fault] | None = Field(
        None, description="loops failing now; the service is not ready while one keeps failing")
    reason: str | None = Field(None, description="why the service is not ready")


class HistoryEntry(Schema):
    version: int
    type: str
    at: datetime
    by: str | None
    changes: dict[str, Any]
    instance_id: str | None = Field(None, description="the occurrence a fact is about "
                                    "(OccurrenceChanged, OccurrenceCancelled)")


class HistoryOut(Schema):
    history: list[HistoryEntry]


class ErrorDetail(Schema):
    code: str
    message: str
    fields: dict[str, Any] = {}
    items: dict[str, dict[str, str]] | None = Field(
        None, description="batch endpoints: each failing item's index and its problems")


class ErrorOut(Schema):
    error: ErrorDetail


class OperatorStatus(Schema):
    """What an operator's console shows of the service: the log's head and each view's lag."""

    operator: bool = Field(description="always true: only operators are answered")
    position: int = Field(description="the event log's head")
    views: dict[str, ViewLag]


class Replayed(Schema):
    """Each view rebuilt, with the log position it was rebuilt to and swapped in at."""

    views: dict[str, int]
