.PHONY: install test lint typecheck demo bench check

install:
	scripts/venv dev

test:
	scripts/test

lint:
	.venv/bin/ruff check src tests

typecheck:
	.venv/bin/mypy src

check: lint typecheck test

demo:
	scripts/demo

bench:
	.venv/bin/conveyor bench
