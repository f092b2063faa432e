/* Physical pages: a free list, and a reference count per page (for COW). */
#pragma once
#include "types.h"

void kalloc_init(u64 start, u64 end);
void *kalloc(void);                 /* one zeroed page, or NULL */
void kfree(void *page);             /* drop a reference; freed at zero */
void kref(void *page);              /* add a reference */
int krefs(void *page);
u64 kfree_pages(void);
