# The two commands of the README. Both set everything up first (idempotent).
.PHONY: run test setup bench

run:            ## set up, then open the coach terminal app on the embedded default
	@scripts/setup
	@.venv/bin/coach

test:           ## set up with test extras, then run the whole test suite
	@scripts/setup dev
	@.venv/bin/python -m pytest

bench:          ## set up, then print the benchmark ratios
	@scripts/setup dev
	@for b in benchmarks/bench_*.py; do .venv/bin/python "$$b"; done
