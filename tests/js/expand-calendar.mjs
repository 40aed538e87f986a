// Expands a recurring event of an iCalendar text with Mozilla's ical.js, as calendar apps built
// on it (Thunderbird) do: the series' RRULE, RDATE and EXDATE, its VTIMEZONE, and each VEVENT
// with a RECURRENCE-ID taking the place of the occurrence it names. The Python tests compare
// this with the API's /instances.
//
// stdin: {"text": <iCalendar>, "after": <ISO instant>, "before": <ISO instant>, "uid": <UID>}
// ("uid" optional: the series with that UID, for a file of many events).
// stdout: a JSON array of the occurrences whose original start is in [after, before), in
// order: {"original_start", "start", "end", "summary", "location"}, instants in UTC.
import ICAL from "ical.js";

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const { text, after, before, uid } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const calendar = new ICAL.Component(ICAL.parse(text));
for (const zone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(zone);
}
const vevents = calendar.getAllSubcomponents("vevent")
  .filter((vevent) => uid === undefined || vevent.getFirstPropertyValue("uid") === uid);
const series = new ICAL.Event(vevents.find((vevent) => !vevent.hasProperty("recurrence-id")));
for (const vevent of vevents) {
  if (vevent.hasProperty("recurrence-id")) {
    series.relateException(vevent);
  }
}
const from = new Date(after);
const until = new Date(before);
const found = [];
const iterator = series.iterator();
for (let next = iterator.next(); next; next = iterator.next()) {
  const original = next.toJSDate();
  if (original >= until) {
    break;
  }
  if (original < from) {
    continue;
  }
  const details = series.getOccurrenceDetails(next);
  found.push({
    original_start: original.toISOString(),
    start: details.startDate.toJSDate().toISOString(),
    end: details.endDate.toJSDate().toISOString(),
    summary: details.item.summary,
    location: details.item.location,
  });
}
process.stdout.write(JSON.stringify(found));
