# Two commands for a fresh clone: `make run` starts the service, `make test` runs the tests.
# Both first create .venv from uv.lock (scripts/bootstrap.sh; quick when already done).

PY := .venv/bin/python

.DEFAULT_GOAL := help
.PHONY: help bootstrap run test lint format typecheck check invariants clean-var

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

bootstrap: ## create .tools/ (pinned uv) and .venv/ (uv sync --frozen) if needed
	@./scripts/bootstrap.sh

run: bootstrap ## start PostgreSQL, Temporal + UI, localstripe, migrations, worker and API (Ctrl-C stops all)
	@$(PY) scripts/run.py

test: bootstrap ## run the whole test suite against real PostgreSQL, Temporal and localstripe
	@$(PY) scripts/pytest_run.py $(ARGS)

lint: bootstrap ## ruff lint and format check
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

format: bootstrap ## ruff: fix lint where safe, then format
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

typecheck: bootstrap ## mypy over the packages listed in pyproject.toml
	@$(PY) -m mypy

check: lint typecheck ## lint + typecheck

invariants: bootstrap ## check the ledger invariants of DATABASE_URL (exit 1 on any violation)
	@$(PY) -m loyalty.invariants

clean-var: ## delete var/ (local PostgreSQL data, Temporal history, logs); stop `make run` first
	rm -rf var
