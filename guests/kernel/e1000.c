/* A driver for the Intel 82540EM ("e1000"), as its manual describes it (8254x SDM):
 * reset, the MAC from the EEPROM (EERD), receive and transmit rings of legacy
 * descriptors; an interrupt (read ICR to acknowledge it) for frames received.  Per
 * frame sent it writes TDT; per frame received it hands the descriptor back by
 * writing RDT: each an MMIO access, and so an exit when the NIC is emulated. */
#include "net.h"
#include "kalloc.h"
#include "lib.h"
#include "pci.h"

#define CTRL 0x0000
#define STATUS 0x0008
#define EERD 0x0014
#define ICR 0x00c0
#define IMS 0x00d0
#define IMC 0x00d8
#define ICR_RXT0 (1u << 7)
#define RCTL 0x0100
#define TCTL 0x0400
#define RDBAL 0x2800
#define RDBAH 0x2804
#define RDLEN 0x2808
#define RDH 0x2810
#define RDT 0x2818
#define TDBAL 0x3800
#define TDBAH 0x3804
#define TDLEN 0x3808
#define TDH 0x3810
#define TDT 0x3818
#define CTRL_SLU (1u << 6)
#define CTRL_RST (1u << 26)
#define STATUS_LU (1u << 1)
#define RCTL_EN (1u << 1)
#define RCTL_BAM (1u << 15)
#define RCTL_SECRC (1u << 26)
#define TCTL_EN (1u << 1)
#define TCTL_PSP (1u << 3)
#define CMD_EOP 1
#define CMD_IFCS 2
#define CMD_RS 8
#define STA_DD 1
#define STA_EOP 2
#define NDESC 32                       /* per ring: 512 bytes, a multiple of 128 */
#define BUFSZ 2048

struct rx_desc { u64 addr; u16 length, csum; volatile u8 status, errors; u16 special; };
struct tx_desc { u64 addr; u16 length; u8 cso, cmd; volatile u8 status; u8 css; u16 special; };

static volatile u8 *regs;
static struct rx_desc *rx;
static struct tx_desc *tx;
static u8 *rx_pages[NDESC / 2], *tx_pages[NDESC / 2];     /* two buffers a page */
static u32 rx_next, tx_next;
u64 e1000_mmio_writes;                 /* what this driver costs, counted for the benchmark */

static u8 *buffer(u8 **pages, u32 i) { return pages[i / 2] + (i % 2) * BUFSZ; }

static u32 rd(u32 reg) { return *(volatile u32 *)(regs + reg); }
static void wr(u32 reg, u32 v) { *(volatile u32 *)(regs + reg) = v; e1000_mmio_writes++; }

static u16 eeprom(int word) {
    wr(EERD, (u32)word << 8 | 1);
    u32 v;
    for (int i = 0; i < 100000; i++)
        if ((v = rd(EERD)) & (1u << 4)) return v >> 16;
    panic("e1000: the EEPROM does not answer");
}

static int send(struct nic *n, const void *frame, u32 len) {
    struct tx_desc *d = &tx[tx_next];
    if (len > BUFSZ) return -1;
    if (d->cmd && !(d->status & STA_DD)) return -1;          /* still the NIC's */
    memcpy(buffer(tx_pages, tx_next), frame, len);
    d->length = len;
    d->status = 0;
    d->cmd = CMD_EOP | CMD_IFCS | CMD_RS;
    __sync_synchronize();
    tx_next = (tx_next + 1) % NDESC;
    wr(TDT, tx_next);
    n->sent++;
    return 0;
}

static int pending(struct nic *n) { return rx[rx_next].status & STA_DD; }

/* Reading ICR acknowledges every cause (and lowers the line). */
static void interrupt(struct nic *n) { (void)rd(ICR); }

static int recv(struct nic *n, void *frame, u32 max) {
    struct rx_desc *d = &rx[rx_next];
    if (!(d->status & STA_DD)) return 0;
    __sync_synchronize();
    u32 len = d->length <= max ? d->length : max;
    memcpy(frame, buffer(rx_pages, rx_next), len);
    d->status = 0;
    wr(RDT, rx_next);                                        /* the descriptor back */
    rx_next = (rx_next + 1) % NDESC;
    n->received++;
    return len;
}

int e1000_probe(struct nic *n) {
    struct pci_dev dev;
    if (pci_find(0x8086, 0x100e, &dev) < 0 || !dev.bar[0]) return -1;
    regs = dev.bar[0];
    wr(IMC, 0xffffffff);
    wr(CTRL, rd(CTRL) | CTRL_RST);
    for (int i = 0; i < 1000 && (rd(CTRL) & CTRL_RST); i++) ;
    wr(IMC, 0xffffffff);                                     /* none while setting up */
    wr(CTRL, rd(CTRL) | CTRL_SLU);
    for (int i = 0; i < 3; i++) {
        u16 w = eeprom(i);
        n->mac[2 * i] = w & 0xff;
        n->mac[2 * i + 1] = w >> 8;
    }
    rx = kalloc();
    tx = kalloc();
    if (!rx || !tx) panic("e1000: out of memory");
    for (int i = 0; i < NDESC / 2; i++)
        if (!(rx_pages[i] = kalloc()) || !(tx_pages[i] = kalloc())) panic("e1000: out of memory");
    for (u32 i = 0; i < NDESC; i++) {
        rx[i] = (struct rx_desc){.addr = (u64)buffer(rx_pages, i)};
        tx[i] = (struct tx_desc){.addr = (u64)buffer(tx_pages, i)};
    }
    wr(RDBAL, (u32)(u64)rx);
    wr(RDBAH, (u32)((u64)rx >> 32));
    wr(RDLEN, NDESC * sizeof *rx);
    wr(RDH, 0);
    wr(RDT, NDESC - 1);
    wr(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);               /* 2 KiB buffers, no FCS */
    wr(TDBAL, (u32)(u64)tx);
    wr(TDBAH, (u32)((u64)tx >> 32));
    wr(TDLEN, NDESC * sizeof *tx);
    wr(TDH, 0);
    wr(TDT, 0);
    wr(TCTL, TCTL_EN | TCTL_PSP);
    if (!(rd(STATUS) & STATUS_LU)) kprintf("e1000: no link\n");
    wr(IMS, ICR_RXT0);                                       /* interrupt: frames received */
    n->name = "e1000";
    n->irq = pci_intx_source(dev.slot);
    n->send = send;
    n->recv = recv;
    n->pending = pending;
    n->interrupt = interrupt;
    return 0;
}
