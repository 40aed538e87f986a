"""The server answers over real HTTP: the first thing a newcomer checks."""

from __future__ import annotations

import httpx


def test_health_and_readiness_answer(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready"
    assert set(ready["views"]) == {"events", "mail", "reminders"}
