/*
 * Debug hooks: a layer on top of each domain (POOLALLOC_DEBUG=1 or
 * pa_setup_debug_hooks) that wraps every block in bytes it can check,
 * CPython's PYTHONMALLOC=debug with a few more faults told apart.
 *
 *   inner block, from the layer below (16-aligned when it is a pool block)
 *   |
 *   v             header, 48 bytes                      p (16-aligned)
 *   [below's 16][size 8][serial 8][offset 4][domain 1][guard 11] data [guard 8..23]
 *                                                                      ^ ends on a
 *                                                          multiple of 16 past p
 *
 * `offset` is p - inner: 48, or more when an alignment above 8 was asked
 * for (the bytes before the header are then filler).  The first 16 bytes are
 * left to the layer below, which keeps its free-list link there once the
 * block is freed (poolalloc's pools: 8 bytes; glibc: up to 16).
 *
 * A freed block keeps size, serial, offset and domain, gets DEAD_BYTE
 * everywhere else (a leading guard of dead bytes marks it freed), and, when it is a pool block, a tag in its second word: the tag says
 * "freed by the debug layer" so the next time the pools hand the block out
 * its dead bytes can be checked (use after free).  Raw blocks get no tag: the
 * C library writes into its free chunks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inline.h"

#define CLEAN_BYTE PA_DEBUG_CLEAN_BYTE
#define DEAD_BYTE PA_DEBUG_DEAD_BYTE
#define FORBIDDEN_BYTE PA_DEBUG_FORBIDDEN_BYTE
#define LEADING_GUARD 11
#define TRAILING_GUARD_MIN 8
/* Second word of a freed pool block: the tag, xor its block size, xor the
 * header's offset from the block start in the high half. */
#define FREED_TAG 0x5eadb10c00000000ULL

typedef struct debug_header {
  uint8_t below[16];
  uint64_t size;
  uint64_t serial;
  uint32_t offset;
  uint8_t domain;
  uint8_t guard[LEADING_GUARD];
} debug_header;
_Static_assert(sizeof(debug_header) == 48, "the header keeps data 16-aligned");
#define HEADER_SIZE sizeof(debug_header)

/* The checks read headers of blocks that may be free, which AddressSanitizer
 * builds poison: reading them is the point here. */
#define READS_FREED_MEMORY __attribute__((no_sanitize("address")))

static const char domain_ids[3] = {'r', 'm', 'o'};
static const char *const domain_names[3] = {
    "the RAW domain (pa_raw_*)",
    "the MEM domain (pa_malloc, pa_mem_*, malloc)",
    "the OBJ domain (pa_obj_*)",
};

static const char *domain_name_of(uint8_t id) {
  for (int d = 0; d < 3; d++)
    if (domain_ids[d] == id) return domain_names[d];
  return "an unknown domain";
}

static pa_layer debug_layers[3];
static _Atomic uint64_t debug_serial;

static pa_domain layer_domain(const void *ctx) {
  return (pa_domain)((const pa_layer *)ctx - debug_layers);
}

static size_t trailing_span(size_t size) {
  return ((size + TRAILING_GUARD_MIN + 15) & ~(size_t)15) - size;
}

static debug_header *header_of(const void *p) {
  return (debug_header *)((char *)p - HEADER_SIZE);
}

/* ---- Reports -------------------------------------------------------------- */

enum fault {
  FAULT_NONE,
  FAULT_OVERFLOW,
  FAULT_UNDERFLOW,
  FAULT_DOUBLE_FREE,
  FAULT_INVALID_FREE,
  FAULT_API_MISMATCH,
  FAULT_USE_AFTER_FREE,
};

static const char *const fault_names[] = {
    [FAULT_OVERFLOW] = "buffer overflow",   [FAULT_UNDERFLOW] = "buffer underflow",
    [FAULT_DOUBLE_FREE] = "double free",    [FAULT_INVALID_FREE] = "invalid free",
    [FAULT_API_MISMATCH] = "API mismatch",  [FAULT_USE_AFTER_FREE] = "use after free",
};

/* "label at address: xx xx xx ..." for up to 48 bytes. */
READS_FREED_MEMORY static void report_bytes(const char *label, const void *at, size_t n) {
  char line[240];
  int used = snprintf(line, sizeof line, "  %s at %p:", label, at);
  if (n > 48) n = 48;
  for (size_t i = 0; i < n && used < (int)sizeof line - 4; i++)
    used += snprintf(line + used, sizeof line - used, " %02x", ((const unsigned char *)at)[i]);
  _pa_message("%s", line);
}

static void report_where_allocated(const void *p, const void *inner) {
  if (!_pa_trace_report_block(p) && !_pa_trace_report_block(inner))
    _pa_message("  %s", pa_trace_frames() ? "allocated before tracing started"
                                          : "set POOLALLOC_TRACE=N to see where blocks are allocated");
}

/* The block's figures, the bytes around both guards, and its origin. */
READS_FREED_MEMORY static void report_block(const void *p, const debug_header *h, bool readable_data) {
  _pa_message("  block %p: %llu bytes requested, serial %llu, allocated through %s", p,
             (unsigned long long)h->size, (unsigned long long)h->serial,
             domain_name_of(h->domain));
  report_bytes("header and leading guard", h, HEADER_SIZE);
  if (!readable_data) return;
  size_t shown = h->size < 8 ? h->size : 8;
  report_bytes("first data bytes", p, shown);
  report_bytes("trailing guard", (const char *)p + h->size, trailing_span(h->size));
}

__attribute__((noreturn, cold)) static void debug_abort(void) {
  _pa_message("poolalloc: debug: aborting");
  abort();
}

READS_FREED_MEMORY __attribute__((noreturn, cold)) static void report_block_fault(enum fault fault, const void *p,
                                                               const char *detail,
                                                               bool readable_data) {
  const debug_header *h = header_of(p);
  _pa_message("poolalloc: debug: %s: block %p %s", fault_names[fault], p, detail);
  report_block(p, h, readable_data);
  report_where_allocated(p, (const char *)p - h->offset);
  debug_abort();
}

/* ---- Checks ---------------------------------------------------------------- */

/* Where the first byte other than value is in [at, at + n), or n: a word
 * at a time. */
READS_FREED_MEMORY static size_t first_byte_not(const void *at, unsigned char value, size_t n) {
  const unsigned char *byte = at;
  uint64_t pattern = 0x0101010101010101ULL * value, word;
  size_t i = 0;
  for (; i + sizeof word <= n; i += sizeof word) {
    memcpy(&word, byte + i, sizeof word);
    if (word != pattern) break;
  }
  for (; i < n; i++)
    if (byte[i] != value) return i;
  return n;
}

static bool bytes_are(const void *at, unsigned char value, size_t n) {
  return first_byte_not(at, value, n) == n;
}

/* Where the pool block (or large block) p points into starts, with its
 * size; NULL unless p lies in a block of a pool that has a class.  A pool
 * gone empty, or a large block's span waiting in the cache, still answers,
 * so a second free of its block is named a double free when its dead bytes
 * are still there (a purged pool reads as zeros: an invalid free). */
static const char *pool_block_start(const void *p, size_t *size) {
  pa_block_info block;
  if (!pa_block_of(p, &block)) return NULL;
  *size = block.size;
  return block.start;
}

/* Whether p can be a block of ours at all, without reading past what is
 * mapped: 8-aligned (every debug block is, 16 over poolalloc's layers), its
 * header readable and, in a
 * pool, where the header's offset says inside one block. */
READS_FREED_MEMORY static bool plausible_block(const void *p) {
  if ((uintptr_t)p % 8 != 0 || (uintptr_t)p < HEADER_SIZE) return false;
  const debug_header *h = header_of(p);
  if (pa_arena_of(p)) {
    size_t block_size;
    const char *block = pool_block_start(h, &block_size);
    return block != NULL && (size_t)((const char *)p - block) == h->offset &&
           h->offset + h->size + trailing_span(h->size) <= block_size;
  }
  return _pa_os_is_mapped(h, HEADER_SIZE);
}

/* The bytes before p are shown only where they are mapped. */
__attribute__((noreturn, cold)) READS_FREED_MEMORY static void report_invalid_free(
    const void *p, pa_domain releasing) {
  _pa_message("poolalloc: debug: invalid free: %p was not returned by poolalloc's allocators "
             "(released through %s)", p, domain_names[releasing]);
  const char *before = (const char *)p - HEADER_SIZE;
  if ((uintptr_t)p % 8 == 0 && (uintptr_t)p >= HEADER_SIZE && _pa_os_is_mapped(before, HEADER_SIZE))
    report_bytes("bytes before it", before, HEADER_SIZE);
  debug_abort();
}

/* Every check a release makes, in the order that names the fault best;
 * the domain is checked unless `any_domain`. */
READS_FREED_MEMORY static void check_block(const void *p, pa_domain releasing, bool any_domain) {
  if (!plausible_block(p)) report_invalid_free(p, releasing);
  const debug_header *h = header_of(p);
  if (bytes_are(h->guard, DEAD_BYTE, LEADING_GUARD))
    report_block_fault(FAULT_DOUBLE_FREE, p, "was freed already", false);
  if (h->domain != 'r' && h->domain != 'm' && h->domain != 'o') report_invalid_free(p, releasing);
  if (!bytes_are(h->guard, FORBIDDEN_BYTE, LEADING_GUARD))
    report_block_fault(FAULT_UNDERFLOW, p, "was written before its start", true);
  if (!bytes_are((const char *)p + h->size, FORBIDDEN_BYTE, trailing_span(h->size)))
    report_block_fault(FAULT_OVERFLOW, p, "was written past its end", true);
  if (!any_domain && h->domain != domain_ids[releasing]) {
    char detail[160];
    snprintf(detail, sizeof detail, "was allocated through %s and released through %s",
             domain_name_of(h->domain), domain_names[releasing]);
    report_block_fault(FAULT_API_MISMATCH, p, detail, true);
  }
}

/* A pool block the debug layer freed carries the tag; every byte it did not
 * keep must still be dead. */
READS_FREED_MEMORY static void check_reused(const char *inner) {
  size_t block_size;
  if (pool_block_start(inner, &block_size) != inner) return;
  uint64_t tag;
  memcpy(&tag, inner + 8, sizeof tag);
  tag ^= FREED_TAG ^ block_size;
  size_t header_at = (size_t)(tag >> 32) & 0x7fffffff;
  if ((tag & 0x80000000ffffffffULL) != 0 || header_at % 16 != 0 ||
      header_at + HEADER_SIZE > block_size)
    return;
  size_t kept_from = header_at + offsetof(debug_header, size);
  size_t kept_to = header_at + offsetof(debug_header, guard);
  size_t i = 16 + first_byte_not(inner + 16, DEAD_BYTE, kept_from - 16);
  if (i == kept_from) i = kept_to + first_byte_not(inner + kept_to, DEAD_BYTE, block_size - kept_to);
  if (i == block_size) return;
  const debug_header *h = (const debug_header *)(inner + header_at);
  const char *p = inner + header_at + HEADER_SIZE;
  _pa_message("poolalloc: debug: use after free: block %p was written after it was freed: "
             "byte %p (+%zd) is 0x%02x, not 0x%02x", (void *)p, (void *)(inner + i),
             (inner + i) - p, (unsigned char)inner[i], DEAD_BYTE);
  _pa_message("  block %p: %llu bytes requested, serial %llu", (void *)p,
             (unsigned long long)h->size, (unsigned long long)h->serial);
  size_t from = i >= 8 ? i - 8 : 0;
  report_bytes("bytes around it", inner + from, block_size - from < 24 ? block_size - from : 24);
  debug_abort();
}

/* ---- The layer ------------------------------------------------------------ */

PA_ENTRY static void *debug_allocate(void *ctx, size_t size, size_t alignment, bool zero) {
  const pa_layer *self = ctx;
  const pa_layer *inner = self->below;
  size_t padding = alignment > 16 ? alignment : alignment > 8 ? 16 : 0;
  if (size > PTRDIFF_MAX - HEADER_SIZE - padding - 32) {
    errno = ENOMEM;
    return NULL;
  }
  size_t span = HEADER_SIZE + padding + size + trailing_span(size);
  char *base = inner->api.malloc(inner->api.ctx, span);
  if (base == NULL) return NULL;
  check_reused(base);
  char *p = base + HEADER_SIZE;
  if (padding) p = (char *)(((uintptr_t)p + padding - 1) & ~(uintptr_t)(padding - 1));
  debug_header *h = header_of(p);
  memset(base, FORBIDDEN_BYTE, (size_t)(p - base));
  h->size = size;
  h->serial = atomic_fetch_add_explicit(&debug_serial, 1, memory_order_relaxed) + 1;
  h->offset = (uint32_t)(p - base);
  h->domain = (uint8_t)domain_ids[layer_domain(ctx)];
  memset(p, zero ? 0 : CLEAN_BYTE, size);
  memset(p + size, FORBIDDEN_BYTE, trailing_span(size));
  return p;
}

/* Kills the block and hands it to the layer below. */
static void debug_release(void *ctx, void *p) {
  const pa_layer *inner = ((const pa_layer *)ctx)->below;
  debug_header *h = header_of(p);
  char *base = (char *)p - h->offset;
  size_t span = h->offset + h->size + trailing_span(h->size);
  size_t block_size;
  bool pool_block = pool_block_start(base, &block_size) == base;
  if (pool_block) span = block_size;
  size_t header_at = (size_t)((char *)h - base);
  memset(base, DEAD_BYTE, header_at + offsetof(debug_header, size));
  memset(h->guard, DEAD_BYTE, span - (header_at + offsetof(debug_header, guard)));
  if (pool_block) {
    uint64_t tag = FREED_TAG ^ span ^ ((uint64_t)header_at << 32);
    memcpy(base + 8, &tag, sizeof tag);
  }
  inner->api.free(inner->api.ctx, base);
}

PA_ENTRY static void *debug_malloc(void *ctx, size_t size) { return debug_allocate(ctx, size, 0, false); }

PA_ENTRY static void *debug_calloc(void *ctx, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return debug_allocate(ctx, total, 0, true);
}

PA_ENTRY static void *debug_aligned(void *ctx, size_t alignment, size_t size) {
  return debug_allocate(ctx, size, alignment, false);
}

static void debug_free(void *ctx, void *p) {
  if (p == NULL) return;
  check_block(p, layer_domain(ctx), false);
  debug_release(ctx, p);
}

/* Always moves the block, so a stale pointer to the old one is caught. */
PA_ENTRY static void *debug_realloc(void *ctx, void *p, size_t size) {
  if (p == NULL) return debug_malloc(ctx, size);
  check_block(p, layer_domain(ctx), false);
  if (size == 0) {
    debug_release(ctx, p);
    return NULL;
  }
  void *fresh = debug_malloc(ctx, size);
  if (fresh == NULL) return NULL;
  size_t old = header_of(p)->size;
  memcpy(fresh, p, old < size ? old : size);
  debug_release(ctx, p);
  return fresh;
}

/* The requested size.  Any domain may ask: nothing is released. */
static size_t debug_usable_size(void *ctx, const void *p) {
  if (p == NULL) return 0;
  check_block(p, layer_domain(ctx), true);
  return header_of(p)->size;
}

void _pa_debug_install(void) {
  if (_pa_domains_contain(&debug_layers[PA_DOMAIN_MEM], PA_DOMAIN_MEM)) return;
  static const pa_layer functions = {
      .api = {NULL, debug_malloc, debug_calloc, debug_realloc, debug_free},
      .aligned = debug_aligned,
      .usable_size = debug_usable_size,
  };
  _pa_debug_hooks_installed = true;
  _pa_domains_push(debug_layers, &functions);
}

bool _pa_debug_hooks_on(void) {
  return _pa_domains_contain(&debug_layers[PA_DOMAIN_MEM], PA_DOMAIN_MEM);
}

void _pa_debug_misuse_end(void) {
  if (_pa_debug_hooks_on()) debug_abort();
}

int _pa_debug_setup(void) {
  if (_pa_domains_contain(&debug_layers[PA_DOMAIN_MEM], PA_DOMAIN_MEM)) return 0;
  if (_pa_allocations_served()) {
    errno = EBUSY;
    return -1;
  }
  _pa_debug_install();
  return 0;
}
