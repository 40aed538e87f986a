// Reads iCalendar texts with Mozilla's ical.js, as calendar apps built on it (Thunderbird) do,
// and prints what it understood as JSON, so the Python tests can check the RFC 5546 properties
// through a parser of someone else's.
//
// stdin: a JSON array of iCalendar texts. stdout: a JSON array, one object per text:
// {"method", "events": [{"uid", "sequence", "status", "dtstamp", "start", "end", "summary",
//  "location", "organizer": {"value", "cn"}, "attendees": [{"value", "cn", "partstat", "rsvp",
//  "role"}], "tzid", "local_start", "local_end"}]}. A text ical.js cannot parse ends the script
// with a non-zero exit. A text's own VTIMEZONEs are what its TZIDs are read with (registered
// first, as calendar apps do): ical.js knows no zone database of its own.
import ICAL from "ical.js";

function address(property) {
  if (!property) {
    return null;
  }
  const shown = { value: property.getFirstValue() };
  for (const name of ["cn", "partstat", "rsvp", "role"]) {
    const parameter = property.getParameter(name);
    if (parameter !== undefined && parameter !== null) {
      shown[name] = parameter;
    }
  }
  return shown;
}

function read(text) {
  const calendar = new ICAL.Component(ICAL.parse(text));
  for (const zone of calendar.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(zone);
  }
  return {
    method: calendar.getFirstPropertyValue("method"),
    events: calendar.getAllSubcomponents("vevent").map((vevent) => {
      const event = new ICAL.Event(vevent);
      return {
        uid: event.uid,
        sequence: event.sequence,
        status: vevent.getFirstPropertyValue("status"),
        dtstamp: vevent.getFirstPropertyValue("dtstamp")?.toJSDate().toISOString() ?? null,
        start: event.startDate.toJSDate().toISOString(),
        end: event.endDate.toJSDate().toISOString(),
        summary: event.summary,
        location: event.location,
        organizer: address(vevent.getFirstProperty("organizer")),
        attendees: vevent.getAllProperties("attendee").map(address),
        tzid: vevent.getFirstProperty("dtstart").getParameter("tzid") ?? null,
        local_start: event.startDate.toString(),
        local_end: event.endDate.toString(),
      };
    }),
  };
}

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const texts = JSON.parse(Buffer.concat(chunks).toString("utf8"));
process.stdout.write(JSON.stringify(texts.map(read)));
