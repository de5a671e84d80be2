"""tickloop built-in plugin: memory (placeholder)."""
