"""The server answers over real HTTP: the first thing a newcomer checks."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import serving


def test_health_and_readiness_answer(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready"
    assert set(ready["views"]) == {"events", "mail", "reminders"}


def test_browsers_from_the_configured_origin_may_call_the_api(tmp_path: Path) -> None:
    origin = "https://app.example.org"
    with serving(tmp_path / "data", "sqlite", env={"ALPHABET_CORS_ORIGINS": origin}) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        preflight = http.options("/api/events/", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.headers.get("access-control-allow-origin") == origin, preflight.headers
        assert "GET" in preflight.headers.get("access-control-allow-methods", "")
        answer = http.get("/healthz", headers={"Origin": origin})
        assert answer.headers.get("access-control-allow-origin") == origin, answer.headers
        stranger = http.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in stranger.headers
