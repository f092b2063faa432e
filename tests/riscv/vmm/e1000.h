/* What the VMM test programs that drive an e1000 share: types, the ECAM of the VM's
 * PCIe, the BAR where they place the NIC, its ring registers and descriptors. */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define ECAM(slot, off) (*(volatile u32 *)(0x30000000UL + ((u64)(slot) << 15) + (off)))
#define E1000 0x40000000UL
#define R(reg) (*(volatile u32 *)(E1000 + (reg)))
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

struct txd { u64 addr; u16 len; u8 cso, cmd, status, css; u16 special; };
struct rxd { u64 addr; u16 len, csum; u8 status, errors; u16 special; };

static void sbi_putchar(int c) {
    register long a0 asm("a0") = c, a7 asm("a7") = 1;
    asm volatile("ecall" : "+r"(a0) : "r"(a7) : "memory");
}
static void say(const char *s) { while (*s) sbi_putchar(*s++); }
