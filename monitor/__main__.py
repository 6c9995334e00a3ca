"""``python -m monitor`` is the ``driftgate`` command."""

from monitor.cli import main

main()
