"""The composition root: settings from the environment, wiring, and the `alphabet` command."""
