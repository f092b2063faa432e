"""The device tree handed to firmware, generated from the board's actual devices.

Modelled on what QEMU 7.2 generates for ``-M virt``; built with the ``fdt``
library.  Only what the board really has is described, and ``riscv,isa`` says
exactly what the hart implements.
"""

from __future__ import annotations

import fdt


PH_CPU0, PH_PLIC, PH_TEST = 1, 3, 4      # (2: hart 0's interrupt controller, _ph_cpu)


def _ph_cpu(hart: int) -> int:
    """Hart ``hart``'s phandle; its interrupt controller's is the next one."""
    return PH_CPU0 if hart == 0 else PH_TEST + 2 * hart - 1


def _per_hart(nharts: int, *causes: int) -> list[int]:
    """interrupts-extended cells: each cause on each hart's interrupt controller, hart
    by hart (the order the PLIC's contexts and the CLINT's registers have)."""
    return [c for i in range(nharts) for cause in causes for c in (_ph_cpu(i) + 1, cause)]


def _reg(base: int, size: int) -> fdt.PropWords:
    return fdt.PropWords("reg", base >> 32, base & 0xFFFFFFFF, size >> 32, size & 0xFFFFFFFF)


def _node(name: str, *props, children=()) -> fdt.Node:
    n = fdt.Node(name)
    for p in props:
        n.append(p)
    for c in children:
        n.append(c)
    return n


def build(board) -> bytes:
    """Flattened device tree (version 17) for ``board`` (a :class:`VirtBoard`)."""
    tree = fdt.FDT()
    root = tree.root
    root.append(fdt.PropWords("#address-cells", 2))
    root.append(fdt.PropWords("#size-cells", 2))
    root.append(fdt.PropStrings("compatible", "riscv-virtio"))
    root.append(fdt.PropStrings("model", "riscv-virtio,qemu"))

    chosen = [fdt.PropStrings("stdout-path", f"/soc/serial@{board.UART_BASE:x}")]
    if board.bootargs:
        chosen.append(fdt.PropStrings("bootargs", board.bootargs))
    initrd = getattr(board, "initrd_range", None)
    if initrd is not None:                       # 64-bit values: two cells each
        for name, value in zip(("linux,initrd-start", "linux,initrd-end"), initrd):
            chosen.append(fdt.PropWords(name, value >> 32, value & 0xFFFFFFFF))
    tree.add_item(_node("chosen", *chosen))

    tree.add_item(_node(f"memory@{board.RAM_BASE:x}", fdt.PropStrings("device_type", "memory"),
                        _reg(board.RAM_BASE, board.ram.size)))

    isa_ext = [e for e in "imafdch" if e.upper() in board.isa.extensions] + ["zicsr", "zifencei"]
    nharts = len(getattr(board, "harts", ())) or 1
    cpus = []
    for i in range(nharts):
        cpus.append(_node(f"cpu@{i}",
                          fdt.PropWords("phandle", _ph_cpu(i)),
                          fdt.PropStrings("device_type", "cpu"),
                          fdt.PropWords("reg", i),
                          fdt.PropStrings("status", "okay"),
                          fdt.PropStrings("compatible", "riscv"),
                          fdt.PropStrings("riscv,isa", board.isa.isa_string),
                          fdt.PropStrings("riscv,isa-base", "rv64i"),
                          fdt.PropStrings("riscv,isa-extensions", *isa_ext),
                          fdt.PropStrings("mmu-type", "riscv,sv48"),
                          children=[_node("interrupt-controller",
                                          fdt.PropWords("#interrupt-cells", 1),
                                          fdt.Property("interrupt-controller"),
                                          fdt.PropStrings("compatible", "riscv,cpu-intc"),
                                          fdt.PropWords("phandle", _ph_cpu(i) + 1))]))
    cores = [_node(f"core{i}", fdt.PropWords("cpu", _ph_cpu(i))) for i in range(nharts)]
    cpus = _node("cpus", fdt.PropWords("#address-cells", 1), fdt.PropWords("#size-cells", 0),
                 fdt.PropWords("timebase-frequency", board.TIMEBASE_HZ),
                 children=[*cpus, _node("cpu-map", children=[_node("cluster0", children=cores)])])
    tree.add_item(cpus)

    tree.add_item(_node("poweroff", fdt.PropWords("value", 0x5555), fdt.PropWords("offset", 0),
                        fdt.PropWords("regmap", PH_TEST),
                        fdt.PropStrings("compatible", "syscon-poweroff")))
    tree.add_item(_node("reboot", fdt.PropWords("value", 0x7777), fdt.PropWords("offset", 0),
                        fdt.PropWords("regmap", PH_TEST),
                        fdt.PropStrings("compatible", "syscon-reboot")))

    soc = [
        _node(f"rtc@{board.RTC_BASE:x}", fdt.PropWords("interrupts", board.RTC_IRQ),
              fdt.PropWords("interrupt-parent", PH_PLIC), _reg(board.RTC_BASE, 0x1000),
              fdt.PropStrings("compatible", "google,goldfish-rtc")),
        _node(f"serial@{board.UART_BASE:x}", fdt.PropWords("interrupts", board.UART_IRQ),
              fdt.PropWords("interrupt-parent", PH_PLIC),
              fdt.PropWords("clock-frequency", 0x384000), _reg(board.UART_BASE, 0x100),
              fdt.PropStrings("compatible", "ns16550a")),
        _node(f"test@{board.TEST_BASE:x}", fdt.PropWords("phandle", PH_TEST),
              _reg(board.TEST_BASE, 0x1000),
              fdt.PropStrings("compatible", "sifive,test1", "sifive,test0", "syscon")),
    ]
    pcie = getattr(getattr(board, "platform", None), "pcie", None)
    if pcie is not None:
        soc.append(pcie.fdt_node(PH_PLIC))
    for slot, (base, irq) in enumerate(board.virtio_slots()):
        soc.append(_node(f"virtio_mmio@{base:x}", fdt.PropWords("interrupts", irq),
                         fdt.PropWords("interrupt-parent", PH_PLIC), _reg(base, 0x1000),
                         fdt.PropStrings("compatible", "virtio,mmio")))
    soc.append(_node(f"plic@{board.PLIC_BASE:x}", fdt.PropWords("phandle", PH_PLIC),
                     fdt.PropWords("riscv,ndev", board.PLIC_NDEV),
                     _reg(board.PLIC_BASE, board.PLIC_SIZE),
                     fdt.PropWords("interrupts-extended",
                                   *_per_hart(nharts, 11, 9)),       # M, S external
                     fdt.Property("interrupt-controller"),
                     fdt.PropStrings("compatible", "sifive,plic-1.0.0", "riscv,plic0"),
                     fdt.PropWords("#address-cells", 0), fdt.PropWords("#interrupt-cells", 1)))
    soc.append(_node(f"clint@{board.CLINT_BASE:x}",
                     fdt.PropWords("interrupts-extended",
                                   *_per_hart(nharts, 3, 7)),        # M software, M timer
                     _reg(board.CLINT_BASE, 0x10000),
                     fdt.PropStrings("compatible", "sifive,clint0", "riscv,clint0")))
    tree.add_item(_node("soc", fdt.PropWords("#address-cells", 2), fdt.PropWords("#size-cells", 2),
                        fdt.PropStrings("compatible", "simple-bus"), fdt.Property("ranges"),
                        children=soc))
    return tree.to_dtb(version=17)
