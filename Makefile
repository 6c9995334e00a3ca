# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration lint typecheck bench fuzz docs clean chromium prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium for the /ui browser test, installed when missing (the test skips, saying why, if it cannot be).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 || \
		echo "chromium could not be installed: the browser test will be skipped"

# Debian's Prometheus (with promtool) and Alertmanager (with amtool) for the alert rules' and
# dashboard tests, installed when missing (those tests skip, saying why, if they cannot be).
prometheus:
	@{ command -v promtool && command -v amtool && command -v prometheus-alertmanager; } >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager; } >/dev/null 2>&1 || \
		echo "prometheus could not be installed: the alert and Prometheus tests will be skipped"

demo: $(STAMP)
	$(BIN)/driftgate demo $(ARGS)

test: $(STAMP) chromium prometheus lint typecheck
	# pytest exits 5 when it collected no tests: not a failure of the code.
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; [ $$status -eq 5 ] && exit 0; exit $$status

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

integration: $(STAMP) chromium prometheus
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

# ruff, then the layer contract of pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy monitor

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/checkpoint.py
	$(BIN)/python benchmarks/elasticsearch_sink.py
	$(BIN)/python benchmarks/drift.py

# Longer than the bounded runs in `make test`: a coverage-guided fuzz of the decoder and ingest
# (its corpus kept in test-artifacts/ for the next run), then more hypothesis and schemathesis examples.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	mkdir -p test-artifacts/fuzz-corpus
	cd test-artifacts && $(abspath $(BIN))/python $(abspath tests/unit/test_fuzz.py) -max_total_time=$(FUZZ_SECONDS) fuzz-corpus
	DRIFTGATE_FUZZ_EXAMPLES=20000 DRIFTGATE_SCHEMA_EXAMPLES=2000 \
		$(BIN)/python -m pytest -p no:cacheprovider tests/unit/test_fuzz.py tests/unit/api/test_app_schema.py

docs: $(STAMP)
	$(BIN)/python -c "from pathlib import Path; from monitor.config import write_reference; write_reference(Path('README.md'))"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
