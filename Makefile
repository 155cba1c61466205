# The two commands of the README. Both set everything up first (idempotent).
.PHONY: run test lint setup bench

run:            ## set up, then open the coach terminal app on the embedded default
	@scripts/setup
	@.venv/bin/coach

TEST_WORKERS ?= 2

test: lint      ## set up with test extras, lint, then run the whole test suite (TEST_WORKERS processes)
	@.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint:           ## set up with test extras, then ruff: lint and formatting, every finding of both (pyproject.toml)
	@scripts/setup dev
	@status=0; \
	.venv/bin/ruff check --output-format concise . || status=1; \
	.venv/bin/ruff format --check --output-format concise . || status=1; \
	exit $$status

bench:          ## set up, then print the benchmark ratios
	@scripts/setup dev
	@for b in benchmarks/bench_*.py; do .venv/bin/python "$$b"; done
