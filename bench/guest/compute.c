/* A CPU-bound mix with no privileged operations: a prime sieve, CRC-32 over a
 * buffer, and an integer matrix multiply, repeated.  Prints a checksum on the
 * UART so every engine can be checked for the same answer. */
#include <stdint.h>

#define UART ((volatile uint8_t *)0x10000000)

static void putc_(char c) { while (!(UART[5] & 0x20)) ; UART[0] = c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(uint64_t v) {
    for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 15]);
}

#ifndef ROUNDS
#define ROUNDS 8
#endif
#define SIEVE 8192
#define N 16

static uint8_t sieve[SIEVE];
static uint8_t buf[4096];
static int32_t a[N][N], b[N][N], c[N][N];

static uint32_t crc32(const uint8_t *p, int n) {
    uint32_t crc = ~0u;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
    }
    return ~crc;
}

int main(void) {
    uint64_t sum = 0;
    for (int i = 0; i < 4096; i++) buf[i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) { a[i][j] = i + j; b[i][j] = i - j; }
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < SIEVE; i++) sieve[i] = 1;
        for (int i = 2; i * i < SIEVE; i++)
            if (sieve[i]) for (int j = i * i; j < SIEVE; j += i) sieve[j] = 0;
        for (int i = 2; i < SIEVE; i++) sum += sieve[i];
        sum += crc32(buf, 1024);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                int32_t s = 0;
                for (int k = 0; k < N; k++) s += a[i][k] * b[k][j];
                c[i][j] = s;
            }
        sum += (uint32_t)c[r % N][(r * 3) % N];
        buf[r] ^= (uint8_t)sum;
    }
    puts_("compute checksum ");
    puthex(sum);
    puts_("\n");
    return 0;
}
