/* A malicious guest with a passed-through e1000 (its VM's PCI slot 1, on a loopback
 * netdev: what it sends comes back to it).  It programs the NIC's DMA at host-physical
 * addresses it was told on its command line, `dma=A:B:C:D` (colons: a --vm option's value has no commas):
 *
 *   a  receive a frame into A (the VMM's memory: another VM's page tables)
 *   b  receive a frame into B (another VM's RAM)
 *   c  receive a frame into C (host RAM outside every VM: the IOMMU's own tables)
 *   d  transmit a frame read from D (another VM's RAM: a leak), received back here
 *   e  its BAR moved a thousand times, over RAM, the PLIC and 0, decoding toggled
 *
 * and prints, for each, whether the DMA happened: "a:written", "d:read <8 bytes hex>",
 * or "a:blocked".  Without an IOMMU a DMA address is host-physical and every attack
 * lands; with it, each is a fault record (tests/test_passthrough.py).
 */
#include "e1000.h"
#include "targets.h"

static struct txd tx[8] __attribute__((aligned(4096)));
static struct rxd rx[8] __attribute__((aligned(4096)));
static u8 frame[64] __attribute__((aligned(64)));
static u8 leak[2048] __attribute__((aligned(4096)));


/* Fresh rings: receive into `rx_buf`, send `len` bytes from `tx_buf`; whether the
 * receive descriptor came back done. */
static int loop_frame(u64 rx_buf, u64 tx_buf, u16 len) {
    R(RCTL) = 0;
    R(TCTL) = 0;
    rx[0] = (struct rxd){rx_buf, 0, 0, 0, 0, 0};
    tx[0] = (struct txd){tx_buf, len, 0, 0x09, 0, 0, 0};    /* EOP, RS */
    asm volatile("fence" ::: "memory");                     /* descriptors before the device */
    R(RDBAL) = (u32)(u64)rx; R(RDBAH) = 0; R(RDLEN) = sizeof rx; R(RDH) = 0; R(RDT) = 1;
    R(RCTL) = (1 << 1) | (1 << 3) | (1 << 4) | (1 << 15);   /* on, promiscuous, broadcast */
    R(TDBAL) = (u32)(u64)tx; R(TDBAH) = 0; R(TDLEN) = sizeof tx; R(TDH) = 0; R(TDT) = 0;
    R(TCTL) = 1 << 1;
    R(TDT) = 1;
    for (int i = 0; i < 100000 && !(rx[0].status & 1); i++)
        asm volatile("" ::: "memory");
    return rx[0].status & 1;
}

int main(long hart, const u8 *fdt) {
    (void)hart;
    u64 t[4];
    if (targets(bootargs(fdt), t, 4) != 4) {
        say("dma_attack: give dma=A:B:C:D on the command line\n");
        return 1;
    }
    ECAM(1, 0x10) = E1000;                               /* place BAR0, enable it */
    ECAM(1, 0x04) = 0x6;
    for (int i = 0; i < 6; i++) frame[i] = 0xff;
    frame[12] = 0x88; frame[13] = 0xb5;
    for (int i = 14; i < 64; i++) frame[i] = "POPEK-DMA-ATTACK"[(i - 14) % 16];
    static const char *written[] = {"a:written\n", "b:written\n", "c:written\n"};
    static const char *blocked[] = {"a:blocked\n", "b:blocked\n", "c:blocked\n"};
    for (int i = 0; i < 3; i++)                          /* (a line at once: VMs share a console) */
        say(loop_frame(t[i], (u64)frame, sizeof frame) ? written[i] : blocked[i]);
    if (loop_frame((u64)leak, t[3], 64)) {
        char line[] = "d:read 0000000000000000\n";
        for (int i = 0; i < 8; i++) {
            line[7 + 2 * i] = "0123456789abcdef"[leak[i] >> 4];
            line[8 + 2 * i] = "0123456789abcdef"[leak[i] & 15];
        }
        say(line);
    } else {
        say("d:blocked\n");
    }
    /* e: its configuration space abused: the BAR moved a thousand times, over its own
     * RAM, over the PLIC, to 0, decoding toggled; then a read through the BAR where it
     * was left (inside the window: the device's STATUS register, without an exit) */
    static const u32 places[] = {0x80000000u, 0x0c000000u, 0, 0x40000000u, 0x7ffe0000u};
    for (u32 i = 0; i < 1000; i++) {
        ECAM(1, 0x10) = places[i % 5];
        ECAM(1, 0x04) = i & 1 ? 0x6 : 0;
    }
    ECAM(1, 0x10) = E1000;
    ECAM(1, 0x04) = 0x6;
    say(R(0x0008) & 2 ? "e:survived, link up\n" : "e:survived, link down\n");
    say("dma_attack: done\n");
    return 0;
}
