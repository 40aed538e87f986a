"""alphabet.heap: what a process holds once it is built is out of the collector's full
collections, and what it makes afterwards is not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from alphabet import heap


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes on collecting as before


@pytest.mark.usefixtures("thawed")
def test_what_lives_at_the_freeze_is_left_out_of_collections_and_later_objects_are_not() -> None:
    built = [object()]  # a list: the collector tracks it
    heap.freeze()
    made_after = [object()]
    collected = {id(o) for o in gc.get_objects()}
    assert id(built) not in collected
    assert id(made_after) in collected
    assert gc.get_freeze_count() > 0
