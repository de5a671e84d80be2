"""``python -m tickloop.cli``: the ``tickloop`` command."""

from tickloop.cli import main

main()
