"""The heart of Alphabet Events: aggregates, their rules and the use cases, free of I/O."""
