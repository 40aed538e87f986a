"""The notifications pipeline: tracked followers of the notification log with side effects —
WebSocket messages, emails, reminders — and the faust app that runs them at scale."""
