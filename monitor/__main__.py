"""``python -m monitor`` is the ``driftgate`` command."""

from monitor.cli.app import main

if __name__ == "__main__":
    main()
