/* The PLIC, seen from this hart's S-mode context: sources on, claim, complete. */
#pragma once
#include "types.h"
#include "vm.h"

void plic_map(pagetable_t pt);        /* vm_init: the priority, enable and context pages */
void plic_enable(int source);         /* priority 1, enabled for S-mode on hart 0 */
int plic_claim(void);                 /* the source interrupting, 0: none */
void plic_complete(int source);
