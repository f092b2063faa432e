# The front door.  `make run` boots the default guest, `make test` runs every test;
# both install what they need first (scripts/setup.sh).
PY := .venv/bin/python

.PHONY: setup run test bench clean

setup:
	@scripts/setup.sh

run: setup
	$(PY) -m popek run --stats $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/bench_riscv.py $(ARGS)

clean:
	$(MAKE) -C tests/riscv/asm clean
	$(MAKE) -C bench/guest clean
