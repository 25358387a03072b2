# Two commands for a fresh clone: `make run` starts the service, `make test` checks and tests it.
# Both first create .venv from uv.lock (scripts/bootstrap.sh; quick when already done), with every
# dependency group: the test tools (dev) and the embedded stack (devstack).

PY := .venv/bin/python

.DEFAULT_GOAL := help
.PHONY: help bootstrap run test pytest check lint format typecheck invariants clean-var

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

bootstrap: ## create .tools/ (pinned uv) and .venv/ (uv sync --frozen --all-groups) if needed
	@./scripts/bootstrap.sh

run: bootstrap ## start PostgreSQL, Temporal + UI, localstripe, migrations, worker and API (Ctrl-C stops all)
	@$(PY) scripts/run.py

test: check ## the checks, then the whole test suite (real PostgreSQL, Temporal and localstripe)
	@$(PY) scripts/pytest_run.py $(ARGS)

pytest: bootstrap ## the tests only, without the checks (ARGS="..." passes pytest arguments)
	@$(PY) scripts/pytest_run.py $(ARGS)

# One line per tool, so a failure names it.
check: bootstrap ## ruff lint, ruff format check, import contracts (import-linter), mypy
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@.venv/bin/lint-imports --no-cache --no-logo
	@$(PY) -m mypy

lint: bootstrap ## ruff lint and format check
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

format: bootstrap ## ruff: fix lint where safe, then format
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

typecheck: bootstrap ## mypy over the packages listed in pyproject.toml
	@$(PY) -m mypy

invariants: bootstrap ## check the ledger invariants of DATABASE_URL (exit 1 on any violation)
	@$(PY) -m loyalty.ledger.invariants

clean-var: ## delete var/ (local PostgreSQL data, Temporal history, logs); stop `make run` first
	rm -rf var
