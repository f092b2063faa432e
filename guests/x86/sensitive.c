/* Robin and Irvine's sensitive, unprivileged instructions, run in ring 0 and then in
 * ring 3 under KVM: what each returns there (or the fault it takes), over the UART.
 *
 *   sgdt, sidt   the descriptor tables' base and limit
 *   sldt, str    the LDT and task register selectors
 *   smsw         CR0's low 16 bits
 *   pushf        RFLAGS (IF, IOPL)
 *   popf         clearing IF: done in ring 0; in ring 3 only where CPL <= IOPL, else
 *                silently ignored (this guest's ring 3 runs with IOPL 3, for the UART,
 *                so IF should clear there too: docs/holes.md tells what PVM does)
 *
 * Before hardware assist, a deprivileged guest kernel executing these saw the host's
 * values or had its writes ignored, without a trap.  Under VT-x/AMD-V the guest's
 * ring 0 is really ring 0 of the guest, whose GDTR, IDTR, TR and CR0 shadow are its
 * own: the values are the guest's.  A #GP or #UD (UMIP, on a host that sets it for
 * the guest) is caught by this guest's IDT and reported instead.  Entered in long
 * mode, ring 0, with popek's GDT (user data 0x20, user code 0x28, TSS 0x30). */
#include <stdint.h>

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static void puts(const char *s) { while (*s) outb(0x3f8, *s++); }
static void puthex(uint64_t v) {
    char b[19]; b[18] = 0;
    for (int i = 17; i >= 2; i--) { b[i] = "0123456789abcdef"[v & 15]; v >>= 4; }
    b[0] = '0'; b[1] = 'x';
    puts(b);
}

/* A fault in a probe: the handler (below) resumes at `recover` with `faulted` set. */
volatile uint64_t recover, faulted;
struct idt_gate { uint16_t lo, sel; uint8_t ist, attr; uint16_t mid; uint32_t hi, zero; };
static struct idt_gate idt[32] __attribute__((aligned(16)));
extern char gp_handler[], ud_handler[];
__asm__(".globl gp_handler\ngp_handler:\n add $8, %rsp\n movq $13, faulted(%rip)\n jmp 1f\n"
        ".globl ud_handler\nud_handler:\n movq $6, faulted(%rip)\n"
        "1: push %rax\n mov recover(%rip), %rax\n mov %rax, 8(%rsp)\n pop %rax\n iretq\n");

static void gate(int v, char *fn) {
    uint64_t a = (uint64_t)fn;
    idt[v] = (struct idt_gate){(uint16_t)a, 0x10, 0, 0x8E, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
}

struct dtr { uint16_t limit; uint64_t base; } __attribute__((packed));

#define PROBE(name, code)                                                     \
    do {                                                                      \
        faulted = 0;                                                          \
        recover = (uint64_t)&&name##_after;                                   \
        code;                                                                 \
    name##_after:                                                             \
        __asm__ volatile("" ::: "memory");                                    \
    } while (0)

static void report(const char *ring) {
    struct dtr gdtr = {0}, idtr = {0};
    uint64_t msw = 0, tr = 0, ldt = 0, flags = 0, after = 0;
    puts(ring); puts(": sgdt ");
    PROBE(g, __asm__ volatile("sgdt %0" : "=m"(gdtr)));
    if (faulted) { puts("fault "); puthex(faulted); }
    else { puthex(gdtr.base); puts("/"); puthex(gdtr.limit); }
    puts(" sidt ");
    PROBE(i, __asm__ volatile("sidt %0" : "=m"(idtr)));
    if (faulted) { puts("fault "); puthex(faulted); }
    else { puthex(idtr.base); puts("/"); puthex(idtr.limit); }
    puts(" smsw ");
    PROBE(m, __asm__ volatile("smsw %0" : "=r"(msw)));
    if (faulted) { puts("fault "); puthex(faulted); } else puthex(msw);
    puts(" str ");
    PROBE(t, __asm__ volatile("str %0" : "=r"(tr)));
    if (faulted) { puts("fault "); puthex(faulted); } else puthex(tr);
    puts(" sldt ");
    PROBE(l, __asm__ volatile("sldt %0" : "=r"(ldt)));
    if (faulted) { puts("fault "); puthex(faulted); } else puthex(ldt);
    /* pushf; then popf of the same flags with IF cleared, and pushf again. */
    __asm__ volatile("pushfq; popq %0" : "=r"(flags));
    __asm__ volatile("pushq %1; popfq; pushfq; popq %0" : "=r"(after) : "r"(flags & ~0x200UL)
                     : "memory", "cc");
    puts(" pushf "); puthex(flags); puts(" popf(IF=0) "); puthex(after);
    puts("\n");
}

void ring3(void);

int main(void) {
    struct dtr d = {sizeof idt - 1, (uint64_t)idt};
    gate(13, gp_handler);
    gate(6, ud_handler);
    __asm__ volatile("lidt %0" :: "m"(d));
    __asm__ volatile("sti" ::: "memory");        /* IF on, so ring 3's pushf can show it */
    report("ring 0");
    /* iretq to ring 3: ss, rsp, rflags (IOPL 3, IF), cs, rip; ring3 never returns. */
    __asm__ volatile("pushq $0x23\n pushq $0x70000\n pushq $0x3202\n pushq $0x2b\n pushq %0\n iretq"
                     :: "r"((uint64_t)ring3) : "memory");
    return 1;
}

void ring3(void) {
    report("ring 3");
    outb(0x501, 0);                                 /* IOPL 3: the debug-exit port */
    for (;;) ;
}

__asm__(".globl _start\n_start:\n call main\n mov %eax, %ebx\n mov $0x501, %dx\n"
        " outb %al, %dx\n hlt\n");
