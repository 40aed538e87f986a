"""`python -m bench.mail`: the CPU cost of building invitation emails, in-process. One letter
per change, then each recipient's message (headers and their copy of the calendar, spliced
into the shared body) as bytes, beside the baseline measured in the same run: each
recipient's calendar rendered whole by the icalendar library, as a letter per recipient would
need. Best of several rounds of CPU time, so other work on the machine counts little."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from consumers.calendar import Invitation, Person
from consumers.mail.letters import letter
from domain.events import Event
from domain.presentation import fields_of

SENDER = "Alphabet Events <events@localhost>"


def best(rounds: int, work: Callable[[], object]) -> float:
    """The least CPU time one call of `work` took over `rounds` calls."""
    least = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work()
        least = min(least, time.process_time() - started)
    return least


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--recipients", type=int, default=100)
    options.add_argument("--rounds", type=int, default=15)
    args = options.parse_args()
    start = datetime(2030, 12, 3, 18, tzinfo=UTC)
    people = [str(uuid.uuid4()) for _ in range(args.recipients)]
    event = Event.create(owner_id="owner", name="Design review", starting_time=start,
                         end_time=start + timedelta(hours=1), location="Tel Aviv Port",
                         participants=people)
    names = {p: ("user", f"user{n}") for n, p in enumerate(people)} | {"owner": ("user", "alice")}
    recipients = [Person(f"user{n}@example.com", f"user{n}") for n in range(len(people))]
    made = letter("created", event, names, [], "events@localhost")

    def messages() -> None:
        for person, recipient in zip(people, recipients, strict=True):
            made.to(SENDER, recipient, f"<{event.id}.1.{person}.created@localhost>").as_bytes()

    def whole_calendars() -> None:
        organiser = Person("events@localhost", "alice")
        for recipient in recipients:
            Invitation(fields_of(event), "REQUEST", organiser).to(recipient)

    per_letter = best(args.rounds, lambda: letter("created", event, names, [],
                                                  "events@localhost"))
    per_message = best(args.rounds, messages) / len(people)
    baseline = best(args.rounds, whole_calendars) / len(people)
    print(f"letter per change:            {per_letter * 1000:.2f} ms")
    print(f"message per recipient:        {per_message * 1000:.3f} ms")
    print(f"baseline, calendar rendered per recipient: {baseline * 1000:.3f} ms "
          f"(the message costs {per_message / baseline:.0%} of it)")


if __name__ == "__main__":
    main()
