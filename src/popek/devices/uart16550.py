"""A 16550A UART: the console of both backends.

Register map (byte registers, reg-shift 0):

    off  read                 write
    0    RBR (rx data)        THR (tx data)          DLAB=1: DLL
    1    IER                  IER                    DLAB=1: DLM
    2    IIR                  FCR
    3    LCR                  LCR   (bit 7 = DLAB)
    4    MCR                  MCR   (bit 4 = loopback)
    5    LSR                  -
    6    MSR                  -
    7    SCR                  SCR

Transmission is instant: THR is always empty again by the time software looks.
The interrupt line is level: (rx data and IER.ERBFI) or (THR empty pending and
IER.ETBEI).  ``irq`` is a callable taking the level; as QEMU's serial does, it is
called at every change of the UART's state, not only when the level changes, so
that a byte received while a THR-empty interrupt is still unacknowledged is a new
request to the interrupt controller (riscv/plic.py).
"""

from __future__ import annotations

from collections import deque

IER_RX, IER_THRE = 0x01, 0x02
IIR_NONE, IIR_THRE, IIR_RX = 0x01, 0x02, 0x04
IIR_FIFO = 0xC0
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
LCR_DLAB = 0x80
MCR_LOOP = 0x10
RX_FIFO = 4096      # bytes buffered from the host before input is dropped


class Uart16550:
    SIZE = 0x100

    def __init__(self, output, irq=None):
        self.output = output            # callable(bytes)
        self.irq = irq or (lambda level: None)
        self.rx: deque[int] = deque()
        self.ier = self.lcr = self.mcr = self.scr = self.fcr = 0
        self.dll, self.dlm = 0x01, 0x00
        self.thre_pending = False
        self.tx_bytes = self.rx_bytes = 0
        self._level = False

    # -- host side --------------------------------------------------------
    def push_input(self, data: bytes) -> None:
        room = RX_FIFO - len(self.rx)
        self.rx.extend(data[:room])
        self._update()

    def wants_input(self) -> bool:
        return len(self.rx) < RX_FIFO

    # -- guest side -------------------------------------------------------
    def read(self, off: int, size: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if off == 0:
            if dlab:
                return self.dll
            if not self.rx:
                return 0
            v = self.rx.popleft()
            self.rx_bytes += 1
            self._update()
            return v
        if off == 1:
            return self.dlm if dlab else self.ier
        if off == 2:
            iir = self._iir()
            if iir == IIR_THRE:
                self.thre_pending = False        # reading IIR acknowledges THRE
                self._update()
            return iir | (IIR_FIFO if self.fcr & 1 else 0)
        if off == 3:
            return self.lcr
        if off == 4:
            return self.mcr
        if off == 5:
            return (LSR_DR if self.rx else 0) | LSR_THRE | LSR_TEMT
        if off == 6:
            return 0xB0                          # DCD, DSR, CTS asserted
        if off == 7:
            return self.scr
        return 0

    def write(self, off: int, size: int, value: int) -> None:
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if off == 0:
            if dlab:
                self.dll = value
            else:
                self.tx_bytes += 1
                if self.mcr & MCR_LOOP:
                    self.rx.append(value)
                else:
                    self.output(bytes([value]))
                self.thre_pending = True
        elif off == 1:
            if dlab:
                self.dlm = value
            else:
                # Enabling THRE interrupts when THR is empty raises one at once.
                if value & IER_THRE and not self.ier & IER_THRE:
                    self.thre_pending = True
                self.ier = value & 0x0F
        elif off == 2:
            self.fcr = value & 0xC9
            if value & 0x02:
                self.rx.clear()
        elif off == 3:
            self.lcr = value
        elif off == 4:
            self.mcr = value & 0x1F
        elif off == 7:
            self.scr = value
        # What changes the interrupt state: THR and IER (not the divisor latch behind
        # them), and FCR when it empties the receive FIFO.
        if (off <= 1 and not dlab) or (off == 2 and value & 0x02):
            self._update()

    def _iir(self) -> int:
        if self.ier & IER_RX and self.rx:
            return IIR_RX
        if self.ier & IER_THRE and self.thre_pending:
            return IIR_THRE
        return IIR_NONE

    def _update(self) -> None:
        level = self._iir() != IIR_NONE
        if level or self._level:
            self._level = level
            self.irq(level)
