"""Tests of monitor.server that need no server: what building the sidecar loads."""

from __future__ import annotations

import subprocess
import sys


def test_the_sidecar_loads_no_elasticsearch_client_scipy_or_report_libraries_unless_asked() -> None:
    """The Elasticsearch client pulls in pyarrow when installed (about 60 MB resident), and
    Evidently pandas: a sidecar without a sink or a report request must not pay for them.
    SciPy (about 30 MB) is not needed at all: monitor.core.stats.distributions stands in for it."""
    code = (
        "import sys, monitor.server, monitor.cli.app; "
        "print(sorted(m for m in ('elasticsearch', 'pyarrow', 'pandas', 'evidently', 'scipy') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
