"""/metrics in Prometheus' text format: what the workers count as they go (requests, latency,
sockets, group-commit batches), summed over every worker through prometheus-client's
multiprocess files (alphabet.metrics_dir), and what the stores hold, read when scraped (the
views' and consumers' positions behind the log's head, the emails sent, failed and pending):
counting those where they happen would mean hooks deep inside the follower and the mailer,
which run in other processes, while their tables already say it."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic.response import BaseHTTPResponse, raw

from alphabet.metrics_dir import VARIABLE
from api.context import off_loop, served
from api.docs import PLAIN_TEXT, Answer, documented
from api.errors import ApiError, unauthorized
from consumers.mail.counts import MailCounts
from projections.events_queries import EventsReader
from projections.follower import Log

bp = Blueprint("metrics")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsServices:
    """What a scrape reads of the stores: the log's head, each view's position, and mail's
    counts (consumers.mail.counts)."""

    log: Log
    reader: EventsReader
    mail_counts: Callable[[], Awaitable[MailCounts]]

# The workers' own metrics, in this registry when a process serves alone (tests that build the
# app in-process); in multiprocess mode their values go to files and this registry is unused.
LIVE = CollectorRegistry()

REQUESTS = Counter("alphabet_http_requests", "HTTP requests answered, by route name, method "
                   "and status", ["route", "method", "status"], registry=LIVE)
LATENCY = Histogram("alphabet_http_request_duration_seconds", "Time from a request's arrival "
                    "at its handler to its answer, by route name and method",
                    ["route", "method"], registry=LIVE,
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
SOCKETS = Gauge("alphabet_websockets_open", "WebSockets open (authenticating or subscribed)",
                registry=LIVE, multiprocess_mode="livesum")
BATCHES = Histogram("alphabet_group_commit_batch_size", "Commands saved per group-commit "
                    "transaction", registry=LIVE,
                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

# A request that matched no route (404, 405): one label value, whatever its path.
UNMATCHED = "(unmatched)"
# Headers a reverse proxy adds: a request relayed for someone else is not a loopback client's.
FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class Scraped:
    """What /metrics reads from the stores: the views' and the consumers' tracking names, and
    the token a scraper must present (None: loopback clients only)."""

    views: Sequence[str]
    consumers: Sequence[str]
    token: str | None


def instrument(app: Sanic[Any, Any], scraped: Scraped) -> None:
    """Count every request the app answers, by its route's name (bounded, unlike paths)."""
    app.ctx.metrics = scraped
    app.register_middleware(started, "request")
    app.register_middleware(answered, "response")


async def started(request: Request) -> None:
    request.ctx.metrics_started = time.perf_counter()


async def answered(request: Request, response: BaseHTTPResponse) -> None:
    key = (request.route.name if request.route else UNMATCHED, request.method,
           response.status)
    counted = _children.get(key) or _child(*key)
    counted[0].inc()
    began = getattr(request.ctx, "metrics_started", None)
    if began is not None:
        counted[1].observe(time.perf_counter() - began)


# Each label set's counter and histogram, found once: labels() costs as much as the count.
# As bounded as the labels themselves.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _child(name: str, method: str, status: int) -> tuple[Counter, Histogram]:
    route = name if name == UNMATCHED else name.partition(".")[2]  # without the app's name
    found = _children[name, method, status] = (REQUESTS.labels(route, method, str(status)),
                                               LATENCY.labels(route, method))
    return found


def process_stopped() -> None:
    """A worker's gauges stop counting when it stops (its sockets are closed)."""
    if os.environ.get(VARIABLE):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@bp.get("/metrics")
@documented("Prometheus metrics (text format 0.0.4). Loopback clients only, unless "
            "ALPHABET_METRICS_TOKEN is set: then `Authorization: Bearer <that token>` from "
            "anywhere", {200: Answer(media=PLAIN_TEXT), 401: Answer(headers=("WWW-Authenticate",)),
                         403: None})
@served(MetricsServices)
async def metrics(request: Request, services: MetricsServices) -> HTTPResponse:
    allow(request, request.app.ctx.metrics.token)
    up = 1
    try:
        found = await from_stores(services, request.app.ctx.metrics)
    except Exception:  # the workers' own metrics still tell, and the scrape says why not more
        log.warning("/metrics could not read the stores", exc_info=True)
        found, up = [], 0
    found.append(GaugeMetricFamily("alphabet_store_up", "1 when this scrape could read the "
                                   "stores (lag, emails), 0 when it could not", value=up))
    return raw(await off_loop(exposition, Families(found)),
               content_type=CONTENT_TYPE_PLAIN_0_0_4)


def allow(request: Request, token: str | None) -> None:
    """With a token, the token from anywhere (compared in constant time); without, loopback
    clients that no proxy relayed."""
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()):
            raise unauthorized("/metrics needs Authorization: Bearer <ALPHABET_METRICS_TOKEN>")
        return
    if not loopback(request.ip) or any(name in request.headers for name in FORWARDED):
        raise ApiError(403, "forbidden", "/metrics answers loopback clients only; set "
                       "ALPHABET_METRICS_TOKEN to scrape it from elsewhere")


def loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Families(Collector):
    """Metric families made before a scrape, handed to the registry that renders them."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def from_stores(services: MetricsServices, scraped: Scraped) -> list[Metric]:
    head = await off_loop(services.log.head)
    found: list[Metric] = [GaugeMetricFamily("alphabet_log_head", "The event log's last "
                                             "position", value=head)]
    for kind, names in (("view", scraped.views), ("consumer", scraped.consumers)):
        lag = GaugeMetricFamily(f"alphabet_{kind}_lag", f"Log positions each {kind} is "
                                "behind the log's head", labels=[kind])
        for name in names:
            lag.add_metric([name], max(head - await services.reader.position(name), 0))
        found.append(lag)
    return [*found, *await emails(services)]


async def emails(services: MetricsServices) -> list[Metric]:
    counts = await services.mail_counts()
    return [
        CounterMetricFamily("alphabet_emails_sent", "Emails delivered", value=counts.sent),
        CounterMetricFamily("alphabet_emails_failed", "Delivery attempts that failed (each "
                            "is retried with backoff)", value=counts.failed),
        CounterMetricFamily("alphabet_emails_dropped", "Emails not sent because their "
                            "recipient or event was erased", value=counts.dropped),
        GaugeMetricFamily("alphabet_emails_pending", "Emails queued and not yet delivered",
                          value=counts.pending),
    ]


def exposition(families: Collector) -> bytes:
    """Every worker's metrics (summed from their files) or this process's own, then what was
    read from the stores."""
    live = LIVE
    if os.environ.get(VARIABLE):
        live = CollectorRegistry()
        multiprocess.MultiProcessCollector(live)  # type: ignore[no-untyped-call]
    stored = CollectorRegistry()
    stored.register(families)
    return generate_latest(live) + generate_latest(stored)
