# The front door.  `make run` boots the default guest, `make test` runs every test;
# both install what they need first (scripts/setup.sh).
PY := .venv/bin/python

# The default guest: Debian 13's own riscv64 kernel, unmodified, as a guest of popek's VMM
# (VMM=trap-emulate: deprivileged, shadow paging; bt: binary translation; hw: VS-mode under
# the H extension, nested paging; none: bare, after OpenSBI), with popek's busybox
# initramfs and an ext4 disk it mounts on /mnt (build/linux-disk.img, kept); the exit
# ledger is printed at poweroff.  RISCV_APPEND skips the kernel's boot-time crypto
# self-tests, over half of its instructions to the prompt (QUICK_BOOT is
# popek.linux.debian.QUICK_BOOT; README, "Two commands"): `make run
# RISCV_APPEND=console=ttyS0` runs them.
VMM ?= trap-emulate
RISCV_KERNEL = $$(ls .cache/debian-riscv64/boot/vmlinux-*-riscv64 | tail -1)
QUICK_BOOT = cryptomgr.notests initcall_blacklist=blake2s_mod_init,jent_mod_init
RISCV_APPEND ?= console=ttyS0 earlycon=sbi $(QUICK_BOOT)
# Debian's S-mode U-Boot under the same VMM (`make run-uboot`), a prompt in seconds.
UBOOT ?= /usr/lib/u-boot/qemu-riscv64_smode/uboot.elf

.PHONY: setup run run-uboot run-linux test bench guest clean

setup:
	@scripts/setup.sh

run: setup
	@mkdir -p build
	$(PY) -m popek initramfs --arch riscv64 -o build/initrd-riscv64.cpio
	@[ -f build/linux-disk.img ] || { truncate -s 64M build/linux-disk.img && \
	    /sbin/mkfs.ext4 -q -O ^has_journal -L popek build/linux-disk.img; }
	$(PY) -m popek run --vmm $(VMM) --kernel $(RISCV_KERNEL) \
	    --initrd build/initrd-riscv64.cpio -m 512M \
	    --drive build/linux-disk.img --append "$(RISCV_APPEND)" \
	    --stats $(ARGS)

run-uboot: setup
	$(PY) -m popek run --vmm $(VMM) --kernel $(UBOOT) --stats $(ARGS)

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

guest: setup
	$(MAKE) -C guests all-flavours

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/riscv/asm clean
	$(MAKE) -C tests/riscv/vmm clean
	$(MAKE) -C tests/riscv/fp clean
	$(MAKE) -C tests/riscv/virt clean
	$(MAKE) -C bench/guest clean
