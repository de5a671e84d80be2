"""tickloop built-in plugin: executors (placeholder)."""
