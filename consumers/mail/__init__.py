"""Email: a tracked follower turns facts into rows of an outbox table (in the same transaction
as its position), and a mailer delivers them — over SMTP, or as .eml files in the dev outbox —
retrying with backoff until each is delivered. Every message has a Message-ID made of ids only,
so a duplicate after a crash is recognisable.

One module a job, in the order a fact travels: `outbox` (the tracked view that queues one row
per recipient), `letters` (the email of one change, with its iTIP invitation), `delivery` (the
mailer: due rows, backoff, the settled mark), and where the messages go: `transports` (the
Transport port and SMTP) or `dev_outbox` (.eml files, with the lock that erasure shares)."""
