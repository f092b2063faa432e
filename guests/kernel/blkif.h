/* popek's driver-domain block interface (after Xen's blkif): the ring a driver domain
 * shares with the VMM, and its hypercalls.  The VMM's side is
 * src/popek/vmm/drivers/blkif.py; keep the two the same.
 *
 * The ring is BLKIF_RING_PAGES pages of the domain's RAM (given to the VMM with
 * DOMAIN_ATTACH).  The VMM produces requests (req_prod), the domain responses
 * (rsp_prod); each side's consumer index is its own business.  A request's data is
 * pieces of guest pages the VMM granted to the domain: a grant reference each, with
 * the offset and length of the piece in its page.  The domain maps the grants into
 * its grant window (GRANT_MAP: the window's pages are IOMMU mappings only, for its
 * device's DMA) and they are revoked when it posts the response. */
#pragma once
#include "types.h"

#define BLKIF_SLOTS 16                  /* requests in flight at most */
#define BLKIF_PIECES 64                 /* pieces of a request at most */
#define BLKIF_RING_PAGES 3
#define BLKIF_OP_READ 0
#define BLKIF_OP_WRITE 1
#define BLKIF_OP_FLUSH 2
#define BLKIF_OK 0
#define BLKIF_ERROR -1

struct blkif_piece { u32 ref; u16 offset, len; };
struct blkif_request {
    u64 id;
    u32 op, npieces;
    u64 sector;
    struct blkif_piece piece[BLKIF_PIECES];
};
struct blkif_response { u64 id; int status; u32 reserved; };
struct blkif_ring {
    u32 req_prod, req_cons, rsp_prod, rsp_cons;
    u8 reserved[48];
    struct blkif_request req[BLKIF_SLOTS];      /* at byte 64 */
    struct blkif_response rsp[BLKIF_SLOTS];
};

/* Hypercalls (popek's SBI extension, popek_hypercall.h): */
#define POPEK_FID_DOMAIN_ATTACH 7   /* a0 = the ring's gpa; a1 back: the window's gpa */
#define POPEK_FID_GRANT_MAP 8       /* a0 = gpa of {u32 ref, u32 slot}[a1]: map ref at
                                       window + slot * 4 KiB; a1 back: how many were */
#define POPEK_FID_DOMAIN_NOTIFY 9   /* responses are posted */
#define BLKIF_WINDOW_SLOTS (BLKIF_SLOTS * BLKIF_PIECES)
struct blkif_map { u32 ref, slot; };
