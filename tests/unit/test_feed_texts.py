"""A worker's feed texts (api.feeds.FeedTexts): the polls that miss one text at the same time
wait for one making of it, which is then kept; a making that fails fails them all and is not
left behind."""

from __future__ import annotations

import asyncio

import pytest

from api.feeds import FeedTexts


def test_polls_that_miss_a_text_at_once_make_it_once_and_keep_it() -> None:
    texts = FeedTexts()
    makings: list[str] = []

    async def polls() -> list[tuple[str, bytes]]:
        gate = asyncio.Event()

        async def make() -> tuple[str, bytes]:
            makings.append("made")
            await gate.wait()
            return '"as made"', b"BEGIN:VCALENDAR"

        waiting = [asyncio.ensure_future(texts.made('"as read"', make)) for _ in range(8)]
        await asyncio.sleep(0)  # one turn of the loop: every poll is waiting now
        waiting[0].cancel()  # a poll that goes away leaves the making to the others
        gate.set()
        answers = await asyncio.gather(*waiting[1:])
        # a later miss (the text dropped, say) makes it again: nothing is left in flight
        answers.append(await texts.made('"as read"', make))
        return answers

    answers = asyncio.run(polls())
    assert answers == [('"as made"', b"BEGIN:VCALENDAR")] * 8
    assert makings == ["made", "made"]
    assert texts.get('"as made"') == b"BEGIN:VCALENDAR"


def test_a_making_that_fails_fails_every_poll_waiting_for_it_and_is_not_kept() -> None:
    texts = FeedTexts()

    async def polls() -> None:
        async def make() -> tuple[str, bytes]:
            raise OSError("the store went away")

        for answer in await asyncio.gather(*(texts.made('"t"', make) for _ in range(3)),
                                           return_exceptions=True):
            assert isinstance(answer, OSError)
        with pytest.raises(OSError):
            await texts.made('"t"', make)

    asyncio.run(polls())
    assert texts.get('"t"') is None
