/* Physical page allocator: a free list threaded through the free pages, and a
 * reference count per page so copy-on-write pages are freed by their last user. */
#include "kalloc.h"
#include "lib.h"

struct run { struct run *next; };
static struct run *freelist;
static u64 base, npages, nfree;
static u16 *refcount;               /* one per page from base */

static u64 index_of(void *page) {
    u64 i = ((u64)page - base) / PGSIZE;
    if ((u64)page % PGSIZE || (u64)page < base || i >= npages) panic("bad page %p", page);
    return i;
}

void kalloc_init(u64 start, u64 end) {
    start = PGROUNDUP(start);
    end = PGROUNDDOWN(end);
    /* The reference counts live in the first pages of the range. */
    u64 count = (end - start) / PGSIZE;
    u64 table = PGROUNDUP(count * sizeof(u16));
    refcount = (u16 *)start;
    memset(refcount, 0, table);
    base = start + table;
    npages = (end - base) / PGSIZE;
    for (u64 i = npages; i-- > 0;) {
        struct run *r = (struct run *)(base + i * PGSIZE);
        r->next = freelist;
        freelist = r;
    }
    nfree = npages;
}

void *kalloc(void) {
    struct run *r = freelist;
    if (!r) return NULL;
    freelist = r->next;
    nfree--;
    refcount[index_of(r)] = 1;
    memset(r, 0, PGSIZE);
    return r;
}

void kref(void *page) { refcount[index_of(page)]++; }

int krefs(void *page) { return refcount[index_of(page)]; }

void kfree(void *page) {
    u64 i = index_of(page);
    if (!refcount[i]) panic("double free of %p", page);
    if (--refcount[i]) return;
    struct run *r = page;
    r->next = freelist;
    freelist = r;
    nfree++;
}

u64 kfree_pages(void) { return nfree; }
