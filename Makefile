# The front door.  `make run` boots the default guest, `make test` runs every test;
# both install what they need first (scripts/setup.sh).
PY := .venv/bin/python
# The default guest: Debian's S-mode U-Boot, under popek's trap-and-emulate VMM
# (which provides the SBI that OpenSBI would); the exit ledger is printed at the end.
KERNEL ?= /usr/lib/u-boot/qemu-riscv64_smode/uboot.elf
VMM ?= trap-emulate

.PHONY: setup run test bench guest clean

setup:
	@scripts/setup.sh

run: setup
	$(PY) -m popek run --vmm $(VMM) --kernel $(KERNEL) --stats $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/bench_riscv.py $(ARGS)
	$(PY) bench/bench_vmm.py

guest: setup
	$(MAKE) -C guests all-flavours

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/riscv/asm clean
	$(MAKE) -C tests/riscv/vmm clean
	$(MAKE) -C bench/guest clean
