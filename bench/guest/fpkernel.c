/* An FP-heavy mix with no privileged operations (built for rv64imafdc, lp64d):
 *
 *   1. n-body: the five Jovian planets of the Computer Language Benchmarks Game,
 *      in double, STEPS steps (fused multiply-adds, a square root and a division
 *      per pair of bodies), and the system's energy before and after;
 *   2. a single-precision N×N matrix multiply, MROUNDS times, in round-to-nearest
 *      and then again rounding down and up (the bounds of interval arithmetic,
 *      through frm: the instructions say "dynamic"), with conversions from and to
 *      integers and between the formats around it.
 *
 * It prints a checksum of the bit patterns of its results and of the flags they
 * raised (fflags), never a float through printf, so every engine can be checked
 * for the same answer to the bit. */
#include <stdint.h>

#define UART ((volatile uint8_t *)0x10000000)

static void putc_(char c) { while (!(UART[5] & 0x20)) ; UART[0] = c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(uint64_t v) {
    for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 15]);
}

#ifndef STEPS
#define STEPS 10000
#endif
#ifndef MROUNDS
#define MROUNDS 64
#endif
#define N 16

/* -- checksum: FNV-1a over 64-bit words ---------------------------------------------- */
static uint64_t hash = 1469598103934665603ULL;
static void mix(uint64_t v) { hash = (hash ^ v) * 1099511628211ULL; }
static uint64_t bits_d(double d) { union { double d; uint64_t u; } c = { .d = d }; return c.u; }
static uint32_t bits_s(float f) { union { float f; uint32_t u; } c = { .f = f }; return c.u; }

static inline void set_frm(int rm) { __asm__ volatile("fsrm %0" : : "r"(rm)); }
static inline uint64_t get_fflags(void) { uint64_t v; __asm__ volatile("frflags %0" : "=r"(v)); return v; }

/* -- 1. n-body ------------------------------------------------------------------------ */
#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24
#define BODIES 5

struct body { double x, y, z, vx, vy, vz, mass; };

/* Page-aligned, which aligns the whole .data section (and .bss after it): data on
 * the page of the code would make every store take the slow path that looks for
 * code it overwrites, in popek as in QEMU. */
static struct body bodies[BODIES] __attribute__((aligned(4096))) = {
    {0, 0, 0, 0, 0, 0, SOLAR_MASS},                                         /* sun */
    {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
     -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS},
    {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
     2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS},
    {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
     -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS},
    {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
     -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS},
};

static void offset_momentum(void) {
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < BODIES; i++) {
        px += bodies[i].vx * bodies[i].mass;
        py += bodies[i].vy * bodies[i].mass;
        pz += bodies[i].vz * bodies[i].mass;
    }
    bodies[0].vx = -px / SOLAR_MASS;
    bodies[0].vy = -py / SOLAR_MASS;
    bodies[0].vz = -pz / SOLAR_MASS;
}

static double energy(void) {
    double e = 0;
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        e += 0.5 * b->mass * (b->vx * b->vx + b->vy * b->vy + b->vz * b->vz);
        for (int j = i + 1; j < BODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            e -= b->mass * c->mass / __builtin_sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

static void advance(double dt) {
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        for (int j = i + 1; j < BODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            double d2 = dx * dx + dy * dy + dz * dz;
            double mag = dt / (d2 * __builtin_sqrt(d2));
            b->vx -= dx * c->mass * mag; b->vy -= dy * c->mass * mag; b->vz -= dz * c->mass * mag;
            c->vx += dx * b->mass * mag; c->vy += dy * b->mass * mag; c->vz += dz * b->mass * mag;
        }
    }
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        b->x += dt * b->vx; b->y += dt * b->vy; b->z += dt * b->vz;
    }
}

/* -- 2. single-precision matrices ---------------------------------------------------- */
static float a[N][N], b[N][N], c[N][N], lo[N][N], hi[N][N];

static void matmul(float (*out)[N]) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int k = 0; k < N; k++) s += a[i][k] * b[k][j];
            out[i][j] = s;
        }
}

int main(void) {
    offset_momentum();
    mix(bits_d(energy()));
    for (int s = 0; s < STEPS; s++) advance(0.01);
    mix(bits_d(energy()));
    for (int i = 0; i < BODIES; i++) {
        mix(bits_d(bodies[i].x)); mix(bits_d(bodies[i].vy));
        mix((uint64_t)(int64_t)(bodies[i].z * 1e9));           /* fcvt.l.d */
    }
    mix(get_fflags());

    uint32_t seed = 12345;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            seed = seed * 1103515245u + 12345u;
            a[i][j] = (float)(int32_t)(seed >> 8) / 8388608.0f;       /* fcvt.s.w, fdiv.s */
            seed = seed * 1103515245u + 12345u;
            b[i][j] = (float)(seed >> 12) / 1048576.0f - 2.0f;        /* fcvt.s.wu */
        }
    double width = 0;
    for (int r = 0; r < MROUNDS; r++) {
        matmul(c);
        set_frm(2); matmul(lo);                                        /* round down */
        set_frm(3); matmul(hi);                                        /* round up */
        set_frm(0);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                if (!(lo[i][j] <= c[i][j] && c[i][j] <= hi[i][j])) mix(0xbad);
                width += (double)hi[i][j] - (double)lo[i][j];          /* fcvt.d.s */
                a[i][j] = c[i][j] * 0.0625f + (float)(i - j) * 0.001f;
            }
        mix(bits_s(c[r % N][(3 * r) % N]));
        mix((uint64_t)bits_s(lo[(5 * r) % N][r % N]) << 32 | bits_s(hi[(5 * r) % N][r % N]));
    }
    mix(bits_d(width));
    mix(get_fflags());

    puts_("fpkernel checksum ");
    puthex(hash);
    puts_("\n");
    return 0;
}
