# fluoro-audit: `make run` serves the dashboard on the embedded SQLite database (the real one,
# empty on a fresh machine); `make demo` serves the demo's own database, with sample data;
# `make test` runs every test; its PostgreSQL half uses FLUORO_AUDIT_TEST_PG when set, else a
# throwaway cluster when PostgreSQL's server binaries are installed (.ci/throwaway_pg.sh).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PORT   ?= 8501
# Two workers by default (tests wait on PostgreSQL, subprocesses and browsers as much as CPU).
PYTEST_ARGS ?= -n 2 --durations=30

.PHONY: run demo test bench bench-pg setup lint clean screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/fluoro-audit migrate
	$(VENV)/bin/fluoro-audit figures warm --quiet
	$(VENV)/bin/fluoro-audit serve --port $(PORT)

# Never the real database: var/fluoro-audit-demo.sqlite3 with its own keys (audit/demo/guard.py).
demo: setup
	env -u FLUORO_AUDIT_DB $(VENV)/bin/fluoro-audit serve --demo --port $(PORT)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	.ci/throwaway_pg.sh $(PY) -m pytest $(PYTEST_ARGS)

screenshots: setup
	FLUORO_AUDIT_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -m e2e tests/e2e
	FLUORO_AUDIT_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -n 0 tests/documents \
		-k "sqlite and (plain_words or every_figure or verifies)"

bench: setup
	$(PY) bench/run_all.py

# By hand, not CI (minutes to an hour): PG_ADMIN_URL=postgresql://USER:PW@HOST/postgres
# SIZES="1000000 5000000 10000000" make bench-pg fills one database per size (COPY), then runs
# the dashboard pages', alert, summary and rule-check benches on each; keep FLUORO_AUDIT_KEY_DIR
# for later runs.
SIZES ?= 1000000
bench-pg: setup
	@test -n "$(PG_ADMIN_URL)" || (echo "set PG_ADMIN_URL (a role that may create databases)"; exit 2)
	export FLUORO_AUDIT_KEY_DIR=$${FLUORO_AUDIT_KEY_DIR:-bench/out/pg-keys}; \
	for n in $(SIZES); do \
		url=$$($(PY) bench/make_pg_demo.py "$(PG_ADMIN_URL)" --procedures $$n | cut -d' ' -f1) && \
		$(PY) bench/bench_analytics.py --url "$$url" && \
		$(PY) bench/bench_alert_rate.py --url "$$url" --size $$n && \
		$(PY) bench/bench_daily_summary.py --url "$$url" --size $$n && \
		$(PY) bench/bench_rule_checks.py --url "$$url" --size $$n || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
