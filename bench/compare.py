"""PostgreSQL beside SQLite, from one `python -m bench --both-backends` run: every route's
throughput and p99 on each backend at the same workers and connections, against the bar the
scale-out backend must clear (at least half SQLite's requests per second, at most twice its
p99), the visibility latencies against theirs, and what a second instance on the same
database adds."""

from __future__ import annotations

from typing import Any

from bench.text import cpu, number, table

RATIO_MINIMUM = 0.5
P99_MAXIMUM = 2.0
# PostgreSQL's own bars for how soon a change is seen (LISTEN/NOTIFY wake-ups end to end).
POSTGRES_LATENCY_TARGETS = {("ws_idle", "p99_ms"): 20.0, ("visible", "p50_ms"): 15.0}


def entry(workers: int, connections: int, label: str, sqlite: dict[str, Any],
          postgres: dict[str, Any], rate: str = "rps") -> dict[str, Any]:
    ratio = postgres[rate] / sqlite[rate] if sqlite[rate] else 0.0
    p99 = postgres["p99_ms"] / sqlite["p99_ms"] if sqlite["p99_ms"] else 0.0
    # the rounds were taken in turns, so each round's pair saw the same machine
    paired = zip(sqlite.get("rounds", []), postgres.get("rounds", []), strict=True)
    return {
        "workers": workers, "connections": connections, "route": label,
        "sqlite_rps": round(sqlite[rate], 1), "postgres_rps": round(postgres[rate], 1),
        "ratio": round(ratio, 3),
        "sqlite_p99_ms": sqlite["p99_ms"], "postgres_p99_ms": postgres["p99_ms"],
        "p99_ratio": round(p99, 2),
        "ratio_by_round": [round(pg[rate] / sq[rate], 2) if sq[rate] else 0.0
                           for sq, pg in paired],
        "sqlite_cpu_us": sqlite.get("cpu_us", {}), "postgres_cpu_us": postgres.get("cpu_us", {}),
        "verdict": "PASS" if ratio >= RATIO_MINIMUM and p99 <= P99_MAXIMUM else "MISS",
    }


def http_rows(sqlite: dict[str, Any], postgres: dict[str, Any],
              labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every route at every workers and connections count both backends were measured at."""
    found = []
    for key, scenarios in sqlite["http"].items():
        workers = int(key.removeprefix("w"))
        for name, by_connections in scenarios.items():
            for c, measured in by_connections.items():
                found.append(entry(workers, int(c), labels[name], measured,
                                   postgres["http"][key][name][c]))
        for c, measured in sqlite["append"][f"http_{key}"].items():
            found.append(entry(workers, int(c), f"HTTP POST, {c} client(s)", measured,
                               postgres["append"][f"http_{key}"][c], rate="ok_rps"))
    return found


def timed(results: dict[str, Any], workers: str, figure: str, quantile: str) -> float:
    """A visibility latency; for the WebSocket, timed from the PUT being sent."""
    found = results["latency"][workers][figure]
    return float(found.get("from_put_sent", found)[quantile])


def latency_rows(sqlite: dict[str, Any], postgres: dict[str, Any],
                 labels: dict[str, str]) -> list[dict[str, Any]]:
    found = []
    for key in postgres["latency"]:
        for figure, label in labels.items():
            for quantile in ("p50_ms", "p99_ms"):
                target = POSTGRES_LATENCY_TARGETS.get((figure, quantile))
                value = timed(postgres, key, figure, quantile)
                found.append({
                    "workers": int(key.removeprefix("w")), "figure": f"{label} {quantile[:3]}",
                    "sqlite_ms": timed(sqlite, key, figure, quantile), "postgres_ms": value,
                    "target": "" if target is None else f"≤ {target:g} ms",
                    "verdict": "" if target is None else ("PASS" if value <= target else "MISS"),
                })
    return found


def report(http: list[dict[str, Any]], latency: list[dict[str, Any]]) -> str:
    rows = [[str(r["workers"]), str(r["connections"]), r["route"], number(r["sqlite_rps"]),
             number(r["postgres_rps"]), f"{r['ratio']:.2f}", number(r["sqlite_p99_ms"], 2),
             number(r["postgres_p99_ms"], 2), f"{r['p99_ratio']:.2f}",
             " ".join(f"{x:.2f}" for x in r["ratio_by_round"]), cpu(r["sqlite_cpu_us"]),
             cpu(r["postgres_cpu_us"]), r["verdict"]] for r in http]
    lags = [[str(r["workers"]), r["figure"], number(r["sqlite_ms"], 2),
             number(r["postgres_ms"], 2), r["target"], r["verdict"]] for r in latency]
    missed = [r for r in http if r["verdict"] != "PASS"]
    return "\n".join([
        f"PostgreSQL / SQLite, same run: each route must keep req/s ≥ {RATIO_MINIMUM:.0%} of "
        f"SQLite's and p99 ≤ {P99_MAXIMUM:g}× SQLite's. Each figure is the median of its "
        "rounds, the two backends driven in turns within a round (by round: PG/SQLite req/s "
        "of each round's pair). CPU µs per request: product/PostgreSQL/wrk/rest of the "
        "machine",
        table(["workers", "conns", "route", "SQLite req/s", "PG req/s", "PG/SQLite",
               "SQLite p99", "PG p99", "p99 ×", "by round", "SQLite CPU µs", "PG CPU µs",
               "verdict"], rows),
        f"{len(http) - len(missed)} of {len(http)} pass"
        + (": " + ", ".join(f"w{r['workers']} c{r['connections']} {r['route']}" for r in missed)
           + " miss" if missed else ""),
        "",
        "How soon a change is seen (ms), same run; the targets are PostgreSQL's",
        table(["workers", "figure", "SQLite", "PostgreSQL", "target", "verdict"], lags),
    ])


def scale_out_report(scale_out: dict[str, Any], labels: dict[str, str]) -> str:
    """One instance beside several on the same database, measured one after the other per
    route, with where the CPU went."""
    count = scale_out["instances"]
    rows = []
    for name, by_fleet in scale_out["http"].items():
        for c in by_fleet["1"]:
            one, many = by_fleet["1"][c], by_fleet[str(count)][c]
            rows.append([labels[name], c, number(one["rps"]), number(one["p99_ms"], 2),
                         cpu(one["cpu_us"]), number(many["rps"]), number(many["p99_ms"], 2),
                         cpu(many["cpu_us"]),
                         f"{many['rps'] / one['rps']:.2f}" if one["rps"] else ""])
    return "\n".join([
        f"Scale-out: {count} `alphabet serve --workers 1` instances on one PostgreSQL database, "
        "driven at once (the connections shared out), beside one of them alone; CPU µs per "
        "request: instances/PostgreSQL/wrk/rest of the machine",
        table(["route", "conns", "1 instance req/s", "p99", "CPU µs", f"{count} instances req/s",
               "p99", "CPU µs", "gain"], rows),
    ])
