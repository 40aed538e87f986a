"""Driving load with wrk: a generated Lua script per scenario (paths and bodies picked round-robin,
the Authorization header carried), and the parsing of wrk's report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# wrk's threads share the machine's two cores with the server: more would only steal from it.
THREADS = 2
# Sign-in verifies an argon2 hash (~40 ms) per request: at 64 connections answers take over a
# second, past wrk's default 2 s time-out once queued behind each other.
TIMEOUT = "30s"

INSTALL_HINT = "wrk is not installed: run `apt-get install wrk` (Debian/Ubuntu package `wrk`)"


def require() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


# In a body, replaced per request by a value unique to the run, thread and request: a PUT that
# repeated an event's current name would change nothing and cost next to nothing.
UNIQUE = "@UNIQUE@"


@dataclass
class Request:
    """One request of a scenario's rotation."""

    method: str
    path: str
    body: Any = None  # JSON-encoded when not None


@dataclass
class Result:
    """What wrk reported for one run (latencies in milliseconds)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def ok_rps(self) -> float:
        """Answers that succeeded, per second (wrk's rate counts failures too)."""
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok_rps": self.ok_rps}


def lua_string(text: str) -> str:
    """A Lua string literal; JSON escaping is a subset of Lua's except for non-ASCII, which
    json.dumps escapes as \\uXXXX (Lua 5.1 has no such escape), so those are kept as UTF-8."""
    return json.dumps(text, ensure_ascii=False)


def script(requests: list[Request], token: str | None, threads: int, tag: str) -> str:
    """Each wrk thread has its own Lua state: `setup` numbers the threads so that they walk
    the rotation interleaved (thread k takes items k, k+threads, ...) instead of in step."""
    items = ",\n".join(
        "  {" + ", ".join((
            lua_string(r.method), lua_string(r.path),
            "nil" if r.body is None else lua_string(json.dumps(r.body, ensure_ascii=False)),
        )) + "}"
        for r in requests
    )
    auth = (f'wrk.headers["Authorization"] = {lua_string("Bearer " + token)}\n'
            if token else "")
    return f"""local items = {{
{items}
}}
local started = 0
function setup(thread)
  thread:set("offset", started)
  started = started + 1
end
offset = 0
local count = 0
{auth}wrk.headers["Content-Type"] = "application/json"
function request()
  local item = items[(count * {threads} + offset) % #items + 1]
  count = count + 1
  local body = item[3]
  if body then
    body = (body:gsub("{UNIQUE}", {lua_string(tag)} .. offset .. "." .. count))
  end
  return wrk.format(item[1], item[2], nil, body)
end
"""


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * UNITS[match[2]]


def parse(output: str) -> Result:
    try:
        return read(output)
    except ValueError as exc:
        raise RuntimeError(f"unexpected wrk output ({exc}):\n{output}") from None


def read(output: str) -> Result:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r}")
        return match

    done = find(r"(\d+) requests in ([\d.]+)(us|ms|s|m),")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(
        requests=int(done[1]),
        seconds=milliseconds(done[2] + done[3]) / 1e3,
        rps=float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        # Anchored: "77.50%" in the thread stats above would match a bare "50%".
        p50_ms=milliseconds(find(r"^\s+50%\s+(\S+)")[1]),
        p99_ms=milliseconds(find(r"^\s+99%\s+(\S+)")[1]),
        non_2xx=int(failed[1]) if failed else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run(url: str, name: str, requests: list[Request], token: str | None, connections: int,
        seconds: float, workdir: Path) -> Result:
    """One bounded wrk run (-d); the Lua script is kept in workdir for a look afterwards."""
    return spread([url], name, requests, token, connections, seconds, workdir)


def spread(urls: list[str], name: str, requests: list[Request], token: str | None,
           connections: int, seconds: float, workdir: Path) -> Result:
    """wrk against each of `urls` at once, the connections and the two threads shared out
    between them (a wrk process drives one server), their answers added up: how the bench
    drives several instances of the product, as a load balancer would."""
    count = len(urls)
    threads = max(1, min(THREADS, connections) // count)  # wrk wants a connection per thread
    each = max(threads, connections // count)
    duration = f"{max(1, round(seconds))}s"
    started: list[tuple[Path, subprocess.Popen[str]]] = []
    for index, url in enumerate(urls):
        lua = workdir / f"wrk-{name}-{connections}{'' if count == 1 else f'-{index}'}.lua"
        tag = f"{name}.{connections}.{index}.{uuid.uuid4().hex[:8]}."
        lua.write_text(script(requests, token, threads, tag), encoding="utf-8")
        started.append((lua, subprocess.Popen(
            [require(), f"-t{threads}", f"-c{each}", f"-d{duration}", f"--timeout={TIMEOUT}",
             "--latency", "-s", str(lua), url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )))
    results = []
    for lua, process in started:
        stdout, stderr = process.communicate(timeout=seconds + 60)
        lua.with_suffix(".txt").write_text(stdout + stderr, encoding="utf-8")
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed ({process.returncode}): {stderr}")
        results.append(parse(stdout))
    return combined(results)


def combined(results: list[Result]) -> Result:
    """Several wrk runs as one: counts and rates added; the latencies are each run's worst,
    since wrk reports percentiles, not the samples they could be merged from."""
    if len(results) == 1:
        return results[0]
    return Result(
        requests=sum(r.requests for r in results),
        seconds=max(r.seconds for r in results),
        rps=sum(r.rps for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
    )
