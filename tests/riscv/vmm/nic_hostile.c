/* A hostile NIC driver: it programs the e1000 (PCI slot 1) and the virtio-net (slot 2)
 * of its VM in every way the rules forbid, and prints a letter for each attack it
 * lived through; the VMM must survive all of it in bounded time, and a VM beside it
 * must not notice (tests/test_hostile_guests.py).  Both NICs are on one switch, so
 * what one sends the other receives.
 *
 *   A e1000 transmit ring outside guest RAM        B transmit head beyond the ring
 *   C descriptors whose buffers are outside RAM     D a packet that never ends (no EOP)
 *   E a 4096-descriptor tail storm (bounded per write: the rest between slices)
 *   F the receive ring laid over the transmit ring, frames arriving
 *   G receive ring outside RAM while frames arrive  H EECD, MDIC, ICS garbage storms
 *   I a device reset in the middle of a send       J virtio-net: buffers too small,
 *     a transmit chain with a writable buffer, a queue whose rings overlap
 */
#include "e1000.h"

#define VNET 0x40020000UL

static struct txd ring[4096] __attribute__((aligned(4096)));
static u8 frame[2048] __attribute__((aligned(64)));

static void tx_ring(u64 base, u32 len) {
    R(TCTL) = 0;
    R(TDBAL) = (u32)base;
    R(TDBAH) = (u32)(base >> 32);
    R(TDLEN) = len;
    R(TDH) = 0;
    R(TDT) = 0;
    R(TCTL) = 2;
}

static void fill(int n, u64 addr, u16 len, u8 cmd) {
    for (int i = 0; i < n; i++) ring[i] = (struct txd){addr, len, 0, cmd, 0, 0, 0};
}

int main(void) {
    ECAM(1, 0x10) = E1000;                             /* place the BARs, as an OS would */
    ECAM(1, 0x04) = 0x6;
    ECAM(2, 0x10) = VNET;
    ECAM(2, 0x04) = 0x6;
    for (int i = 0; i < 6; i++) frame[i] = 0xff;       /* broadcast: to the other NIC */
    frame[12] = 0x88; frame[13] = 0xb5;

    say("A");                                          /* a ring outside guest RAM */
    tx_ring(0x1000, 4096);
    R(TDT) = 5;
    say("B");                                          /* the head beyond the ring */
    tx_ring((u64)ring, 128);
    R(TDH) = 100;
    R(TDT) = 3;
    say("C");                                          /* buffers outside RAM, on a device */
    tx_ring((u64)ring, 128);
    fill(8, 0x10000000, 64, 0x09);
    ring[1].addr = E1000;
    ring[2].addr = ~0UL - 10;
    R(TDT) = 7;
    say("D");                                          /* a packet that never ends */
    fill(8, (u64)frame, 16384, 0x08);
    tx_ring((u64)ring, 128);
    for (int k = 0; k < 64; k++) R(TDT) = (k * 7 + 1) % 8;
    say("E");                                          /* a tail storm: 4095 good frames */
    fill(4096, (u64)frame, 60, 0x09);
    tx_ring((u64)ring, sizeof ring);
    R(TDT) = 4095;
    say("F");                                          /* receive ring over transmit ring */
    R(RDBAL) = (u32)(u64)ring;
    R(RDBAH) = 0;
    R(RDLEN) = 128;
    R(RDH) = 0;
    R(RDT) = 7;
    R(RCTL) = 2 | (1 << 3);                            /* enabled, promiscuous */
    tx_ring((u64)ring, 128);
    fill(8, (u64)frame, 60, 0x09);
    R(TDT) = 7;
    say("G");                                          /* receive ring outside RAM */
    R(RDBAL) = 0x2000;
    R(RDLEN) = 4096;
    R(RDT) = 100;
    fill(8, (u64)frame, 60, 0x09);
    tx_ring((u64)ring, 128);
    R(TDT) = 7;
    say("H");                                          /* register garbage */
    for (u32 i = 0; i < 300; i++) {
        R(0x0010) = i * 2654435761u;                   /* EECD */
        R(0x0020) = i * 40503u;                        /* MDIC, any PHY, any op */
        R(0x00c8) = i;                                 /* ICS */
        R(0x00d0) = ~i;                                /* IMS */
        (void)R(0x00c0);                               /* ICR */
        (void)R(0x4000 + 4 * (i % 64));                /* statistics */
    }
    say("I");                                          /* a reset in the middle */
    fill(8, (u64)frame, 60, 0x08);
    tx_ring((u64)ring, 128);
    R(TDT) = 5;
    R(0x0000) = 1u << 26;
    R(TDT) = 7;
    say("J");                                          /* virtio-net: its queues abused */
    volatile u8 *common = (volatile u8 *)VNET;
    common[0x14] = 0;
    common[0x14] = 3;
    *(volatile u32 *)(common + 0x08) = 1;
    *(volatile u32 *)(common + 0x0c) = 1;              /* VERSION_1 */
    common[0x14] = 11;
    for (int q = 0; q < 2; q++) {                      /* both queues on one page: overlap */
        *(volatile u16 *)(common + 0x16) = q;
        *(volatile u16 *)(common + 0x18) = 8;
        *(volatile u64 *)(common + 0x20) = (u64)ring;
        *(volatile u64 *)(common + 0x28) = (u64)ring + 64;
        *(volatile u64 *)(common + 0x30) = (u64)ring + 32;
        *(volatile u16 *)(common + 0x1c) = 1;
    }
    common[0x14] = 15;
    for (int k = 0; k < 100; k++) *(volatile u16 *)(VNET + 0x3000 + 4 * (k & 1)) = k & 1;
    say(" survived\n");
    return 0;
}
