/* The network programs: a responder and a benchmark client, for two VMs on one switch.
 *
 * "netecho" answers, on every NIC, ARP requests and ICMP echo requests for its
 * address (10.0.<NIC>.2, so Linux can ping it), and popek's benchmark protocol
 * (Ethernet type 0x88b5: a local experimental type): HELLO gets a HELLO back on the
 * NIC of the index it names (the client learns our MAC; NICs pair by index), PING is sent back, BULK frames are counted and every
 * WINDOW-th one is acknowledged, QUIT gets a BYE and ends the program.
 * "netbench" is the client: on each NIC it finds the responder, times round trips of
 * small frames and a bulk transfer of full-size frames, and prints BENCH lines:
 *     BENCH net_pingpong_<nic> iters=<round trips> cycles=<c> time_ns=<t>
 *     BENCH net_bulk_<nic> iters=<bytes> cycles=<c> time_ns=<t>
 */
#include "ulib.h"

#define ETH_P_BENCH 0x88b5
#define ETH_P_ARP 0x0806
#define ETH_P_IP 0x0800
#define HELLO 1
#define HELLO_ACK 2
#define PING 3
#define PONG 4
#define BULK 5
#define BULK_ACK 6
#define QUIT 7
#define BYE 8
#define WINDOW 16
#define SMALL 64
#define FULL 1514
#define MAX_NICS 2

static u8 mac[MAX_NICS][6];
static u8 frame[FULL], reply[FULL];
static const u8 broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static u64 be16(const u8 *p) { return (u64)p[0] << 8 | p[1]; }
static void put16(u8 *p, u64 v) { p[0] = v >> 8; p[1] = v; }
static u64 be32(const u8 *p) { return be16(p) << 16 | be16(p + 2); }
static void put32(u8 *p, u64 v) { put16(p, v >> 16); put16(p + 2, v); }

static u64 csum(const u8 *p, u64 n) {
    u64 s = 0;
    for (u64 i = 0; i + 1 < n; i += 2) s += be16(p + i);
    if (n & 1) s += (u64)p[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
}

static int nics(void) {
    int n = 0;
    while (n < MAX_NICS && sys_net_info(n, mac[n]) == 0) n++;
    return n;
}

/* A benchmark frame: to `dst`, of `type`, with a sequence number, `len` bytes. */
static void bench_frame(u8 *f, int nic, const u8 *dst, int type, u64 seq) {
    memcpy(f, dst, 6);
    memcpy(f + 6, mac[nic], 6);
    put16(f + 12, ETH_P_BENCH);
    f[14] = type;
    put32(f + 15, seq);
}

static void send(int nic, const u8 *f, u64 len) {
    while (sys_net_send(nic, f, len) < 0) ;            /* the ring is full: wait */
}

/* The next frame on `nic` (asleep until a NIC interrupts), its length. */
static long wait_frame(int nic, u8 *buf) {
    long n;
    while ((n = sys_net_recv(nic, buf, FULL)) == 0) sys_net_wait();
    return n;
}

/* ------------------------------------------------------------------ netecho */
static int answer(int nic, long n) {
    u8 my_ip[4] = {10, 0, (u8)nic, 2};
    u64 type = be16(frame + 12);
    if (type == ETH_P_ARP && n >= 42 && be16(frame + 20) == 1 && !memcmp(frame + 38, my_ip, 4)) {
        memcpy(reply, frame + 6, 6);                     /* to the asker */
        memcpy(reply + 6, mac[nic], 6);
        put16(reply + 12, ETH_P_ARP);
        memcpy(reply + 14, frame + 14, 6);               /* hardware/protocol types, sizes */
        put16(reply + 20, 2);                            /* reply */
        memcpy(reply + 22, mac[nic], 6);
        memcpy(reply + 28, my_ip, 4);
        memcpy(reply + 32, frame + 22, 10);              /* the asker's MAC and IP */
        send(nic, reply, 42);
    } else if (type == ETH_P_IP && n >= 42 && frame[23] == 1 && !memcmp(frame + 30, my_ip, 4)
               && frame[34] == 8) {                      /* ICMP echo request to us */
        u64 ihl = (frame[14] & 15) * 4, total = be16(frame + 16);
        if (total > (u64)n - 14 || ihl < 20) return 1;
        memcpy(reply, frame, 14 + total);
        memcpy(reply, frame + 6, 6);
        memcpy(reply + 6, mac[nic], 6);
        memcpy(reply + 26, frame + 30, 4);               /* swap the addresses */
        memcpy(reply + 30, frame + 26, 4);
        put16(reply + 24, 0);
        put16(reply + 24, csum(reply + 14, ihl));
        u8 *icmp = reply + 14 + ihl;
        icmp[0] = 0;                                      /* echo reply */
        put16(icmp + 2, 0);
        put16(icmp + 2, csum(icmp, total - ihl));
        send(nic, reply, 14 + total);
    } else if (type == ETH_P_BENCH && n >= 19) {
        int what = frame[14];
        u64 seq = be32(frame + 15);
        if (what == QUIT) {                              /* BYE, so the client knows */
            bench_frame(reply, nic, frame + 6, BYE, seq);
            send(nic, reply, SMALL);
            return 0;
        }
        if (what == HELLO && seq != (u64)nic) return 1;  /* pairs NICs by index: 0 with 0 */
        if (what == HELLO || what == PING) {
            bench_frame(reply, nic, frame + 6, what == HELLO ? HELLO_ACK : PONG, seq);
            send(nic, reply, n);
        } else if (what == BULK && seq % WINDOW == WINDOW - 1) {
            bench_frame(reply, nic, frame + 6, BULK_ACK, seq);
            send(nic, reply, SMALL);
        }
    }
    return 1;
}

void net_echo(void) {
    int n = nics();
    printf("netecho: %d NICs, answering as 10.0.<nic>.2\n", n);
    if (!n) return;
    for (;;) {
        int idle = 1;
        for (int i = 0; i < n; i++) {
            long got = sys_net_recv(i, frame, FULL);
            if (got > 0) idle = 0;
            if (got > 0 && !answer(i, got)) {
                printf("netecho: done\n");
                return;
            }
        }
        if (idle) sys_net_wait();                      /* asleep until a frame comes */
    }
}

/* ----------------------------------------------------------------- netbench */
static const char *nic_name(int nic) {
    static char name[2][8] = {"net0", "net1"};
    return name[nic];
}

/* The next benchmark frame of `type` on `nic` (others are dropped). */
static void expect(int nic, int type) {
    for (;;) {
        long n = wait_frame(nic, frame);
        if (n >= 19 && be16(frame + 12) == ETH_P_BENCH && frame[14] == type) return;
    }
}

/* Send `type` to `dst` on `nic` until `answer` comes back, every 50 ms, `tries` times
 * at most (0: for ever): the responder may still be booting (HELLO), or a frame may
 * still sit in the NIC when the client's machine powers off (QUIT).  1 if answered. */
static int ask(int nic, u64 timebase, const u8 *dst, int type, int answer, int tries) {
    for (int t = 0; !tries || t < tries; t++) {
        bench_frame(reply, nic, dst, type, nic);
        send(nic, reply, SMALL);
        u64 until = rdtime() + timebase / 20;
        while (rdtime() < until) {
            long n = sys_net_recv(nic, frame, FULL);
            if (n >= 19 && be16(frame + 12) == ETH_P_BENCH && frame[14] == answer) return 1;
            if (n == 0) sys_yield();
        }
    }
    return 0;
}

void net_bench(u64 timebase, int pingpongs, int bulk_frames) {
    int n = nics();
    u8 peer[6];
    for (int nic = 0; nic < n; nic++) {
        ask(nic, timebase, broadcast, HELLO, HELLO_ACK, 0);
        memcpy(peer, frame + 6, 6);
        u64 c0 = rdcycle(), t0 = rdtime();
        for (int i = 0; i < pingpongs; i++) {
            bench_frame(reply, nic, peer, PING, i);
            send(nic, reply, SMALL);
            expect(nic, PONG);
        }
        u64 c1 = rdcycle(), t1 = rdtime();
        printf("BENCH net_pingpong_%s iters=%d cycles=%lu time_ns=%lu\n", nic_name(nic),
               pingpongs, c1 - c0, (t1 - t0) * 1000000000UL / timebase);
        c0 = rdcycle(), t0 = rdtime();
        for (int i = 0; i < bulk_frames; i++) {
            bench_frame(reply, nic, peer, BULK, i);
            send(nic, reply, FULL);
            if (i % WINDOW == WINDOW - 1) expect(nic, BULK_ACK);
        }
        c1 = rdcycle(), t1 = rdtime();
        printf("BENCH net_bulk_%s iters=%lu cycles=%lu time_ns=%lu\n", nic_name(nic),
               (u64)bulk_frames * FULL, c1 - c0, (t1 - t0) * 1000000000UL / timebase);
        if (nic == n - 1)                                 /* the responder stops at the last */
            ask(nic, timebase, peer, QUIT, BYE, 20);
    }
    printf("BENCH DONE\n");
}
