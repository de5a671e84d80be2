"""tickloop built-in plugin: sql (placeholder)."""
