"""The faust app for scale-out: a relay publishes the notification log to Kafka (keyed by event
id, so one event's facts stay in order) and agents run mail and reminders with the same handler
code as the embedded consumers. WebSocket messages never go through Kafka (SPEC §4)."""
