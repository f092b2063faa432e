# The front door.  `make run` boots the default guest, `make test` runs every test;
# both install what they need first (scripts/setup.sh).
PY := .venv/bin/python
# The default guest: Debian's S-mode U-Boot after OpenSBI (popek's default --bios).
KERNEL ?= /usr/lib/u-boot/qemu-riscv64_smode/uboot.elf

.PHONY: setup run test bench guest clean

setup:
	@scripts/setup.sh

run: setup
	$(PY) -m popek run --kernel $(KERNEL) --stats $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/bench_riscv.py $(ARGS)

guest: setup
	$(MAKE) -C guests all-flavours

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/riscv/asm clean
	$(MAKE) -C bench/guest clean
