// The console drives the public API only: what it shows, any client could read. Every text
// from the server goes into the page as text (textContent), never as markup.

const $ = (id) => document.getElementById(id);
const TOKENS = "alphabet-console-tokens";
const PAGE = 20;
const FEED_KEPT = 200; // the feed pane shows the latest changes, not the whole log

let tokens = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
let nextCursor = null;
let shownEvent = null; // {id, latest}
let feed = null; // {socket, last, paused}
let lagTimer = null;

// --- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `the server answered ${status}`);
    this.status = status;
  }
}

function keep(pair) {
  tokens = pair ? { access: pair.access, refresh: pair.refresh } : null;
  if (tokens) sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  else sessionStorage.removeItem(TOKENS);
}

async function refreshed() {
  if (!tokens) return false;
  const answer = await fetch("/api/auth/refresh", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: tokens.refresh }),
  });
  if (!answer.ok) return false;
  keep(await answer.json());
  return true;
}

// A request with the access token; an expired one is refreshed once and the request sent again.
async function api(path, options = {}, retry = true) {
  const headers = { ...(options.headers || {}) };
  if (tokens) headers.Authorization = `Bearer ${tokens.access}`;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method: options.method || "GET", headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  if (answer.status === 401 && retry && await refreshed()) return api(path, options, false);
  const body = answer.headers.get("content-type")?.startsWith("application/json")
    ? await answer.json() : null;
  if (!answer.ok) {
    if (answer.status === 401) signedOut("Your session has ended; sign in again.");
    throw new ApiError(answer.status, body);
  }
  return body;
}

// --- signing in and out ------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const form = new FormData($("signin"));
  $("signin-error").textContent = "";
  try {
    const answer = await fetch("/api/auth/signin", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
    });
    const body = await answer.json();
    if (!answer.ok) throw new ApiError(answer.status, body);
    keep(body);
    $("signin-password").value = "";
    await start();
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
}

function signedOut(reason = "") {
  keep(null);
  stopFeed();
  feed = null;
  clearInterval(lagTimer);
  $("main").hidden = true;
  $("signout").hidden = true;
  $("operator-pane").hidden = true;
  $("signin-pane").hidden = false;
  $("who").textContent = "";
  $("signin-error").textContent = reason;
}

async function signOut() {
  if (tokens) {
    await fetch("/api/auth/signout", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh: tokens.refresh }),
    }).catch(() => null);
  }
  signedOut();
  $("signin-username").focus();
}

async function start() {
  const { user } = await api("/api/user/me");
  $("who").textContent = `Signed in as ${user.username}`;
  $("signin-pane").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  $("main").focus();
  startFeed();
  await Promise.all([listEvents(), operatorStatus()]);
}

// --- events: list, search, one event, its trail and past versions -------------------------

function filterQuery() {
  const form = new FormData($("filters"));
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ["q", "participant"]) {
    const value = String(form.get(name) || "").trim();
    if (value) query.set(name, value);
  }
  for (const name of ["starts_after", "starts_before"]) {
    const value = String(form.get(name) || "");
    if (value) query.set(name, new Date(value).toISOString());
  }
  const location = String(form.get("location") || "").trim();
  const path = location ? `/api/search_event/${encodeURIComponent(location)}` : "/api/events";
  return { path, query };
}

let listRequest = 0;
async function listEvents(more = false) {
  const { path, query } = filterQuery();
  if (more && nextCursor) query.set("cursor", nextCursor);
  $("events-status").textContent = "Loading…";
  const asked = ++listRequest;
  try {
    const page = await api(`${path}?${query}`);
    if (asked !== listRequest) return; // a newer search has been asked for
    if (!more) $("events").replaceChildren();
    for (const event of page.events) $("events").append(eventItem(event));
    nextCursor = page.next;
    $("more").hidden = !nextCursor;
    const count = $("events").children.length;
    $("events-status").textContent = count ? `${count} event${count === 1 ? "" : "s"} shown`
      : "No events match.";
  } catch (error) {
    $("events-status").textContent = error.message;
  }
}

function when(text) {
  return new Date(text).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function eventItem(event) {
  const item = document.createElement("li");
  const open = document.createElement("button");
  open.type = "button";
  open.textContent = event.name;
  open.addEventListener("click", () => openEvent(event.id));
  const details = document.createElement("small");
  details.textContent = `${when(event.starting_time)} · ${event.location} · by ${
    event.owner_username ?? "(deleted user)"}`;
  item.append(open, details);
  return item;
}

function showFields(event, note) {
  const fields = [
    ["Name", event.name], ["Starts", when(event.starting_time)], ["Ends", when(event.end_time)],
    ["Location", event.location], ["Participants", event.participants.join(", ") || "none"],
    ["Owner", event.owner_username ?? "(deleted user)"], ["Version", String(event.version)],
  ];
  const list = $("event-fields");
  list.replaceChildren();
  for (const [name, value] of fields) {
    const term = document.createElement("dt");
    term.textContent = name;
    const description = document.createElement("dd");
    description.textContent = value;
    list.append(term, description);
  }
  $("as-of-shown").textContent = note;
}

// Facts name people by id; the trail shows usernames (an erased account has none left).
const usernames = new Map();
async function username(id) {
  if (id === null) return "(nobody)";
  if (!usernames.has(id)) {
    usernames.set(id, api(`/api/user/${id}`).then(({ user }) => user.username,
      () => "(deleted user)"));
  }
  return usernames.get(id);
}

async function openEvent(id, focus = true) {
  $("event-pane").hidden = false;
  $("event-error").textContent = "";
  // A refresh of the event on show (its change came over the feed) keeps the note a deletion
  // left: the feed's message may come after the answer that set it.
  if (!shownEvent || shownEvent.id !== id) $("event-note").textContent = "";
  const [{ history }, current] = await Promise.all([
    api(`/api/event/${id}/history`),
    api(`/api/event/${id}`).catch((error) => ({ error })),
  ]);
  const latest = history[history.length - 1].version;
  const slider = $("as-of");
  // A reader looking at a past version stays there when the event changes meanwhile.
  const inThePast = shownEvent && shownEvent.id === id
    && Number(slider.value) < shownEvent.latest;
  shownEvent = { id, latest, history };
  const names = history.map((fact) => fact.changes.name).filter(Boolean);
  $("event-title").textContent = names[names.length - 1] ?? "Event";
  slider.max = String(latest);
  await renderHistory(history);
  if (inThePast) {
    await showVersion();
    return;
  }
  slider.value = String(latest);
  slider.setAttribute("aria-valuetext", `version ${latest} of ${latest}`);
  if (current.error) {
    $("event-error").textContent = current.error.message;
    $("event-fields").replaceChildren();
    $("as-of-shown").textContent = `Version ${latest} of ${latest}: deleted`;
    $("delete-event").hidden = true;
  } else {
    showFields(current.event, `Version ${latest} of ${latest} (now)`);
    $("delete-event").hidden = false;
  }
  if (focus) $("event-title").focus();
}

async function renderHistory(history) {
  const by = await Promise.all(history.map((fact) => username(fact.by)));
  const list = $("history");
  list.replaceChildren();
  for (const [index, fact] of history.entries()) {
    const item = document.createElement("li");
    item.textContent = `v${fact.version} ${fact.type} by ${by[index]}`;
    const details = document.createElement("small");
    const changed = Object.keys(fact.changes);
    details.textContent = `${when(fact.at)}${changed.length ? ` · ${changed.join(", ")}` : ""}`;
    item.append(details);
    list.append(item);
  }
}

let asOfRequest = 0;
async function showVersion() {
  if (!shownEvent) return;
  const version = Number($("as-of").value);
  const { id, latest, history } = shownEvent;
  $("as-of").setAttribute("aria-valuetext", `version ${version} of ${latest}`);
  const asked = ++asOfRequest;
  try {
    const { event } = await api(`/api/event/${id}?as_of=${version}`);
    if (asked !== asOfRequest) return; // the slider has moved on
    const fact = history.find((entry) => entry.version === version);
    showFields(event, `Version ${version} of ${latest}${
      version === latest ? " (now)" : `, as it was on ${when(fact.at)}`}`);
    $("event-error").textContent = "";
  } catch (error) {
    if (asked === asOfRequest) $("event-error").textContent = error.message;
  }
}

async function deleteEvent() {
  if (!shownEvent || !window.confirm("Delete this event? Its participants are told.")) return;
  try {
    const { message } = await api(`/api/event/${shownEvent.id}`, { method: "DELETE" });
    await Promise.all([openEvent(shownEvent.id), listEvents()]);
    $("event-note").textContent = message;
  } catch (error) {
    $("event-error").textContent = error.message;
  }
}

// --- the live feed: every change, resumed with ?after= so a reconnect misses nothing ------

function socketUrl(last) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ token: tokens.access });
  if (last !== null) query.set("after", String(last));
  return `${scheme}://${location.host}/ws/events?${query}`;
}

function startFeed() {
  const last = feed ? feed.last : null;
  stopFeed();
  feed = { socket: null, last, paused: false, retry: null };
  connect(feed);
  $("feed-toggle").textContent = "Pause the feed";
}

function connect(state) {
  const resumed = state.last;
  const socket = new WebSocket(socketUrl(resumed));
  state.socket = socket;
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "ready") {
      if (state.last === null) state.last = data.position;
      $("feed-status").textContent = resumed === null
        ? `Live from position ${data.position}.`
        : `Reconnected: resumed after position ${resumed}.`;
      return;
    }
    if (state.last !== null && data.position <= state.last) return; // already shown
    state.last = data.position;
    const item = document.createElement("li");
    item.textContent = data.message;
    const details = document.createElement("small");
    details.textContent = `position ${data.position} · ${data.type} · version ${data.version}`;
    item.append(details);
    item.dataset.position = String(data.position);
    $("feed").prepend(item);
    while ($("feed").children.length > FEED_KEPT) $("feed").lastElementChild.remove();
    // The event on show has changed: its trail and slider grow, where the reader is.
    if (shownEvent && data.event_id === shownEvent.id) openEvent(shownEvent.id, false);
  });
  socket.addEventListener("close", async (closed) => {
    if (state !== feed || state.paused || state.socket !== socket) return;
    $("feed-status").textContent = `Disconnected (${closed.code}); reconnecting…`;
    // An expired access token closes the socket with 4401: a fresh one first.
    if (closed.code === 4401 && !(await refreshed())) {
      signedOut("Your session has ended; sign in again.");
      return;
    }
    state.retry = setTimeout(() => connect(state), closed.code === 4401 ? 0 : 1000);
  });
}

function stopFeed() {
  if (!feed) return;
  feed.paused = true;
  clearTimeout(feed.retry);
  feed.socket?.close(1000);
}

function toggleFeed() {
  if (feed && !feed.paused) {
    stopFeed();
    $("feed-status").textContent = `Paused after position ${feed.last}.`;
    $("feed-toggle").textContent = "Resume the feed";
  } else {
    startFeed();
  }
}

// --- operators: the views' lag and replay ---------------------------------------------------

async function operatorStatus() {
  let status;
  try {
    status = await api("/api/operator/status");
  } catch (error) {
    if (error.status === 403) {
      $("operator-pane").hidden = true;
      return;
    }
    $("replay-status").textContent = error.message;
    return;
  }
  $("operator-pane").hidden = false;
  const rows = Object.entries(status.views).map(([name, view]) => {
    const row = document.createElement("tr");
    for (const value of [name, view.position, view.lag]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    row.dataset.view = name;
    return row;
  });
  $("lag").replaceChildren(...rows);
  $("head").textContent = `The event log is at position ${status.position}.`;
  clearInterval(lagTimer);
  lagTimer = setInterval(operatorStatus, 5000);
}

async function replay() {
  const button = $("replay");
  button.disabled = true;
  $("replay-status").textContent = "Replaying…";
  try {
    const { views } = await api("/api/operator/replay", { method: "POST" });
    $("replay-status").textContent = `Replayed: ${Object.entries(views)
      .map(([name, position]) => `${name} to position ${position}`).join(", ")}.`;
    await operatorStatus();
  } catch (error) {
    $("replay-status").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

// --- wiring --------------------------------------------------------------------------------

$("signin").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
$("filters").addEventListener("submit", (event) => { event.preventDefault(); listEvents(); });
$("more").addEventListener("click", () => listEvents(true));
$("as-of").addEventListener("input", showVersion);
$("delete-event").addEventListener("click", deleteEvent);
$("feed-toggle").addEventListener("click", toggleFeed);
$("refresh-lag").addEventListener("click", operatorStatus);
$("replay").addEventListener("click", replay);

if (tokens) start().catch(() => signedOut());
