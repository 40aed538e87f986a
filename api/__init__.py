"""The HTTP and WebSocket edge: turns requests into commands and queries, and errors into the
contract's envelope. No business rule lives here."""
