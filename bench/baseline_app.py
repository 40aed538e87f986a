"""The framework ceiling: a bare Sanic app answering the product's route shapes with the exact
JSON bodies the product answered (one event; a list page), serialised per request as any JSON
route does, and nothing else (no auth, no store, no view). Run as
`python -m bench.baseline_app`."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import JSONResponse
from sanic.response import json as json_response
from sanic.worker.loader import AppLoader


def create_app(event_file: Path, list_file: Path) -> Sanic[Any, Any]:
    event = json.loads(event_file.read_text(encoding="utf-8"))
    page = json.loads(list_file.read_text(encoding="utf-8"))
    app: Sanic[Any, Any] = Sanic("bench_baseline", strict_slashes=False)

    @app.get("/api/event/<event_id:str>")
    async def one_event(request: Request, event_id: str) -> JSONResponse:
        return json_response(event)

    @app.get("/api/events")
    async def events(request: Request) -> JSONResponse:
        return json_response(page)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        return json_response({"status": "ok"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--event-body", type=Path, required=True, help="one event's JSON")
    parser.add_argument("--list-body", type=Path, required=True, help="a list page's JSON")
    args = parser.parse_args()
    loader = AppLoader(factory=partial(create_app, args.event_body, args.list_body))
    app = loader.load()
    app.prepare(host="127.0.0.1", port=args.port, workers=args.workers, single_process=False,
                access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
