"""tickloop built-in plugin: sqlite (placeholder)."""
