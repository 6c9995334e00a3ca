"""``python -m monitor`` is the ``driftgate`` command."""

from monitor.cli.app import main

main()
