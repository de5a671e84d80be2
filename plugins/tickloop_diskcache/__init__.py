"""tickloop built-in plugin: diskcache (placeholder)."""
