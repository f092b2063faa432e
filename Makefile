# The front door.  `make run` boots the default guest, `make test` runs every test;
# both install what they need first (scripts/setup.sh).
PY := .venv/bin/python
# The default guest: Debian's S-mode U-Boot, under popek's trap-and-emulate VMM
# (which provides the SBI that OpenSBI would); the exit ledger is printed at the end.
KERNEL ?= /usr/lib/u-boot/qemu-riscv64_smode/uboot.elf
VMM ?= trap-emulate

.PHONY: setup run run-linux run-linux-riscv test bench guest clean

setup:
	@scripts/setup.sh

run: setup
	$(PY) -m popek run --vmm $(VMM) --kernel $(KERNEL) --stats $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/bench_riscv.py $(ARGS)
	$(PY) bench/bench_fp.py
	$(PY) bench/bench_vmm.py
	$(PY) bench/bench_timer.py
	$(PY) bench/bench_kvm.py
	$(PY) bench/bench_soak.py
	$(PY) bench/bench_linux.py
	$(PY) bench/bench_io.py
	$(PY) bench/bench_passthrough.py
	$(PY) bench/bench_drivers.py
	$(PY) bench/bench_reliability.py
	$(PY) bench/bench_kvm_io.py
	$(PY) bench/bench_io_path.py

# Debian's kernel on the KVM backend, through its PVH entry, with a busybox initramfs.
LINUX_APPEND ?= console=ttyS0 earlyprintk=serial,ttyS0,115200
run-linux: setup
	@mkdir -p build
	$(PY) -m popek initramfs -o build/initrd.cpio
	$(PY) -m popek extract-vmlinux $$(ls .cache/debian-kernel/boot/vmlinuz-*-amd64 | tail -1) \
	    -o build/vmlinux
	$(PY) -m popek run --backend kvm --kernel build/vmlinux --initrd build/initrd.cpio \
	    --append "$(LINUX_APPEND)" --stats $(ARGS)

# Debian 13's riscv64 kernel on the simulated machine, bare (OpenSBI fw_dynamic) or, with
# LINUX_VMM=trap-emulate, as a guest of popek's VMM, with popek's busybox initramfs and an
# ext4 disk it mounts on /mnt (build/linux-disk.img, kept).
RISCV_KERNEL = $$(ls .cache/debian-riscv64/boot/vmlinux-*-riscv64 | tail -1)
LINUX_VMM ?= none
run-linux-riscv: setup
	@mkdir -p build
	$(PY) -m popek initramfs --arch riscv64 -o build/initrd-riscv64.cpio
	@[ -f build/linux-disk.img ] || { truncate -s 64M build/linux-disk.img && \
	    /sbin/mkfs.ext4 -q -O ^has_journal -L popek build/linux-disk.img; }
	$(PY) -m popek run --vmm $(LINUX_VMM) --kernel $(RISCV_KERNEL) \
	    --initrd build/initrd-riscv64.cpio -m 512M \
	    --drive build/linux-disk.img --append "console=ttyS0" \
	    --stats $(ARGS)

guest: setup
	$(MAKE) -C guests all-flavours

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/riscv/asm clean
	$(MAKE) -C tests/riscv/vmm clean
	$(MAKE) -C tests/riscv/fp clean
	$(MAKE) -C tests/riscv/virt clean
	$(MAKE) -C bench/guest clean
