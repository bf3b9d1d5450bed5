"""Storage: SQLite in WAL mode, one writer with group commit, readers off the event loop."""
