/*
 * poolalloc's internal functions, by the file that defines them, from the
 * lowest layer up: OS, metadata, radix tree, secure mode, arenas, pools,
 * thread heaps, the raw layer, the general allocator, domains and their
 * layers, the process's start, the entry points, free lists, statistics;
 * the options, read by every layer, last.  A file calls only the files
 * listed before it and the options (docs/design.md's table, which
 * tests/check_layers.py checks).  Every symbol here carries the reserved
 * prefix _pa_ (tests/check_symbols.sh).
 */
#ifndef POOLALLOC_INTERNAL_H
#define POOLALLOC_INTERNAL_H

#include "types.h"

#pragma GCC visibility push(hidden)

/* ---- OS ------------------------------------------------------------------ */

/* A line to stderr with write(2): safe wherever malloc is not. */
void _pa_message(const char *format, ...) __attribute__((format(printf, 1, 2)));
void *_pa_os_map(size_t size);
/* size bytes aligned to alignment, and `guard` bytes after them mapped
 * PROT_NONE (0 for none): unmapped with _pa_os_unmap(p, size + guard). */
void *_pa_os_map_aligned(size_t size, size_t alignment, size_t guard);
/* Gives back a mapping _pa_os_map_aligned made (guard included): its
 * space is the first tried for the next. */
void _pa_os_unmap_aligned(void *p, size_t size);
/* Gives [p, p + size) back to the OS, keeping the mapping: the pages read
 * as zero when next touched. */
void _pa_os_purge(void *p, size_t size);
/* [p, p + old) grown or shrunk to size bytes where it is (to NULL), or
 * moved, pages and all, over the mapping at `to`; NULL if the kernel
 * cannot, and nothing changed. */
void *_pa_os_remap(void *p, size_t old, size_t size, void *to);
size_t _pa_os_page_size(void);
/* Fills buf with bytes from the kernel's random source; false if it cannot. */
bool _pa_os_random(void *buf, size_t size);
void _pa_os_unmap(void *p, size_t size);
/* Fault injection, so tests can prove that exhaustion is survived: maps
 * number `first` to `last` (counted from 1 since start-up, as _pa_os_maps
 * reports them) are refused; first 0 refuses none.  POOLALLOC_FAIL_MAPS
 * sets it at start-up.  _pa_os_fail_after(n): the next n maps succeed, every
 * later one fails; -1 ends it. */
void _pa_os_fail_maps(size_t first, size_t last);
void _pa_os_fail_after(long countdown);
/* Maps asked for since start-up (refused ones included), and those of them
 * refused on purpose. */
size_t _pa_os_maps(void);
size_t _pa_os_failures_injected(void);
bool _pa_os_is_mapped(const void *p, size_t size);
/* The calling thread's kernel id, which names heaps in statistics. */
int _pa_os_thread_id(void);
/* Resident set size of this process in bytes, 0 if unknown. */
size_t _pa_os_resident_bytes(void);
/* Milliseconds on a monotonic clock. */
uint64_t _pa_os_monotonic_ms(void);

/* ---- Internal metadata (heap and arena records) -------------------------- */

void *_pa_meta_alloc(size_t size);
void _pa_meta_lock(void);
void _pa_meta_unlock(void);
/* Bytes mapped for records so far (they are never unmapped). */
size_t _pa_meta_mapped(void);

/* ---- Radix tree (src/radix.c) ------------------------------------------ */

extern _Atomic(pa_radix_leaf *) _pa_radix_root[PA_RADIX_ROOT_LEN];
extern pa_radix_leaf _pa_radix_first_leaf;
extern _Atomic uintptr_t _pa_radix_first_root;
extern _Atomic uintptr_t _pa_radix_free_root;
void _pa_radix_open_free_path(bool open);
bool _pa_radix_register(uintptr_t base, pa_arena *arena);
void _pa_radix_unregister(uintptr_t base);
size_t _pa_radix_leaves(void);

/* ---- Secure mode (src/secure.c) ----------------------------------------- */

#if PA_SECURE
__attribute__((noreturn, cold)) void _pa_secure_fault(enum pa_secure_fault fault, const pa_pool *pool,
                                                  const void *p);
/* Sets the secrets, once; called before the first block can exist. */
void _pa_secure_init(void);
/* A fresh pool's blocks, all on its free list in random order. */
void _pa_secure_shuffle_pool(pa_pool *pool, pa_heap *owner);
#else
static inline void _pa_secure_init(void) {}
#endif


/* ---- Arenas (src/arena.c) ---------------------------------------------- */

/* npools contiguous free pools of one arena, starting on a multiple of
 * `alignment` pools (a power of two), the record of the first returned
 * with run_pools set and the others marked as its run's; NULL (errno
 * ENOMEM) if out of memory. */
pa_pool *_pa_arena_take_run(unsigned npools, unsigned alignment);
/* Gives pool's run back (every pool of it empty); and a list of them
 * (linked by next) under one taking of the lock. */
void _pa_arena_return_run(pa_pool *pool);
void _pa_arena_return_runs(pa_pool *list);
/* Releases every wholly free arena now, the spare and the decaying ones. */
void _pa_arenas_release_empty(void);
/* Releases the wholly free arenas past the decay delay, as a pool taken or
 * returned would: for a thread that wakes while the program is idle. */
void _pa_arenas_decay_idle(void);
/* The same, taking the lock only when an arena's delay has run out: for
 * the slow allocation path, so a program that goes on allocating from warm
 * pools gives the memory back too. */
void _pa_arenas_decay_due(void);
/* Pools of pool's arena that serve a class now; with the arena lock held. */
unsigned _pa_arena_pools_in_use(const pa_pool *pool);
/* A record for an arena or a large span, from the recycled ones or the
 * metadata; NULL if out of memory.  And its recycling. */
pa_arena *_pa_arena_record_take(void);
void _pa_arena_record_give(pa_arena *record);
/* Registers every arena-sized chunk of [base, base + bytes) with span in
 * the radix tree; false, none registered, if the tree cannot grow.  And
 * their removal. */
bool _pa_arenas_register_span(pa_arena *span, uintptr_t base, size_t bytes);
void _pa_arenas_unregister_span(uintptr_t base, size_t bytes);
/* The decay delay in ms (pa_arena_decay_ms, POOLALLOC_ARENA_DECAY_MS). */
long _pa_arenas_decay_delay_ms(void);
/* Wholly free arenas held: the spare and those waiting out the decay. */
size_t _pa_arenas_empty_count(void);
void _pa_arenas_lock(void);
void _pa_arenas_unlock(void);
void _pa_arenas_counters(struct pa_stats *out);
/* Calls visit for every pool of every arena held, arena by arena, pool by
 * pool, with the arena's base and the pool's index in it; with the arena
 * lock held.  The figures are read as their owners write them. */
void _pa_arenas_walk(void (*visit)(void *ctx, uintptr_t arena, unsigned index,
                                   const pa_pool_view *pool),
                     void *ctx);
/* Calls visit for the record of every pool or run a heap holds (used or
 * full; a run's is its first pool's); with the arena lock held. */
void _pa_arenas_each_run(void (*visit)(pa_pool *first));
bool _pa_arenas_check_order(void);
pa_arena *_pa_arenas_usable_head(void);

/* ---- Pools (src/pool.c) ------------------------------------------------- */

/* The pools of a run of the class (1 for a small class), and the multiple
 * of pools its runs start on. */
unsigned _pa_class_run_pools(unsigned cls);
unsigned _pa_class_run_alignment(unsigned cls);
/* A fresh pool (or run) from the arenas, set up for the class and linked
 * at the front of heap's class list; NULL if out of memory. */
pa_pool *_pa_pool_take_fresh(pa_heap *heap, unsigned size_class);
void _pa_pool_unlink(pa_heap *heap, pa_pool *pool);
/* A pool of head's class list, among the first few after it, with a page's
 * worth of freed blocks on its free list; NULL if none. */
pa_pool *_pa_pool_freed_elsewhere(pa_pool *head);
/* pool, in its class list, made its head: the one the fast path takes from */
void _pa_pool_move_front(pa_heap *heap, pa_pool *pool);
void _pa_pool_mark_full(pa_heap *heap, pa_pool *pool);
void _pa_pool_after_free(pa_heap *heap, pa_pool *pool);
/* An empty pool leaves its class list: kept by the heap for its next fresh
 * pool (PA_HEAP_EMPTY_POOLS), or back to its arena. */
void _pa_pool_release_empty(pa_heap *heap, pa_pool *pool);
/* The heap's kept empty pools, back to their arenas; with `excess`, only
 * those past its bound (a drain of other threads' frees keeps every pool
 * it empties, then gives the excess back under one taking of the arena
 * lock). */
void _pa_pool_release_kept(pa_heap *heap, bool excess);
/* A block of pool for heap, its owner, taken out of turn (compaction's
 * targets); NULL if it has none.  A pool that runs out is marked full. */
void *_pa_pool_take_for(pa_heap *heap, pa_pool *pool);
extern pa_pool _pa_empty_pool;
/* Set by the debug hooks when they go on: a pool going to another class
 * forgets the tags its freed blocks carry, and tracing gives no rounding
 * figures (blocks hold the hooks' headers). */
extern bool _pa_debug_hooks_installed;

/* ---- Thread heaps (src/heap.c) ------------------------------------------ */

/* The calling thread's heap; &_pa_empty_heap until its first slow path, so the
 * fast path needs no "initialised?" test (mimalloc's trick). */
extern _Thread_local pa_heap *_pa_thread_heap __attribute__((tls_model("initial-exec")));
extern pa_heap _pa_empty_heap;

/* A block of class cls for heap (the calling thread's, made if it has none,
 * or a handle table's): frees from other threads, exhausted pools, and a
 * new pool from the arenas; NULL if out of memory. */
void *_pa_heap_malloc_slow(pa_heap *heap, size_t cls);
/* The calling thread's heap, made or adopted if it has none; NULL if out of
 * memory. */
pa_heap *_pa_heap_current(void);
/* The key whose destructor gives a thread's heap up at its exit, made by
 * src/runtime.c at the library's load: every heap given to a thread from
 * then on is set under it, the calling thread's at once, and that of
 * another thread that took one before (only another library's constructor
 * can start such a thread) at its next slow allocation. */
void _pa_heaps_exit_key(pthread_key_t key);
/* The calling thread exits: its heap waits for the next thread. */
void _pa_heap_abandon(pa_heap *heap);
/* In a fork()ed child, heaps lock held: other threads' heaps are abandoned,
 * and the lock released. */
void _pa_heaps_fork_child(void);
/* The same for a thread that only counts its traffic, except past the
 * thread's exit destructor (a heap made then would never be given up):
 * NULL there, and the caller counts in its shared late counters. */
pa_heap *_pa_heap_for_counting(void);
/* A heap for a handle table (a retired table's, or a new one), and its
 * retirement: its empty pools go back, the record waits for the next table. */
pa_heap *_pa_heap_table_make(void);
void _pa_heap_table_retire(pa_heap *heap);
/* A free by another thread of p, in owner's pool (or run) pool. */
void _pa_heap_free_remote(pa_heap *owner, pa_pool *pool, void *p);
void _pa_heap_collect(pa_heap *heap);
void _pa_heaps_collect_abandoned(void);
/* The list of every heap, newest first, for statistics: heaps are never
 * freed, so ids run 1..n without gaps. */
void _pa_heaps_lock(void);
void _pa_heaps_unlock(void);
/* Calls visit for every heap ever made, newest first, with the heaps lock
 * held by the caller; heap is for the features that keep state in it (the
 * free lists' bins), view for everything else. */
void _pa_heaps_walk(void (*visit)(void *ctx, pa_heap *heap, const pa_heap_view *view), void *ctx);
size_t _pa_heaps_count(void);

/* ---- Large blocks (src/large.c) ------------------------------------------ */

/* A block of size bytes in a span of its own, aligned to alignment (at
 * least the arena size), zeroed if asked; NULL (errno ENOMEM) on failure. */
void *_pa_large_malloc(size_t size, size_t alignment, bool zero);
void _pa_large_free(pa_arena *span);
/* The span's block resized to size where it is, or moved by the kernel;
 * NULL (the block untouched) if neither can be done. */
void *_pa_large_realloc(pa_arena *span, size_t size);
/* Gives back the cached spans past the decay delay, when one is due. */
void _pa_large_decay_due(void);
/* Gives back every cached span (pa_collect). */
void _pa_large_release_cached(void);
void _pa_large_counters(struct pa_stats *out);
void _pa_large_lock(void);
void _pa_large_unlock(void);

/* ---- Raw layer (large requests, foreign pointers) ------------------------ */

void *_pa_raw_malloc(size_t size);
void *_pa_raw_calloc(size_t count, size_t size);
void *_pa_raw_realloc(void *p, size_t size);
void *_pa_raw_aligned(size_t alignment, size_t size);
void _pa_raw_free(void *p);
size_t _pa_raw_usable_size(const void *p);
void _pa_raw_counters(struct pa_stats *out);

/* ---- The general allocator (src/alloc.c) ------------------------------- */

void *_pa_general_malloc(size_t size, pa_domain domain);
void *_pa_general_calloc(size_t count, size_t size, pa_domain domain);
void *_pa_general_realloc(void *p, size_t size, pa_domain domain);
void _pa_general_free(void *p, pa_domain domain);
void *_pa_general_aligned(size_t alignment, size_t size, pa_domain domain);
size_t _pa_general_usable_size(const void *p);
/* The counts of threads past their exit destructor, by domain. */
void _pa_general_counters(struct pa_stats *out);
/* The slow paths of a pool block's malloc and free through domain: the
 * heap below knows no domain, so the traffic is counted here. */
void *_pa_general_small_slow(pa_heap *heap, size_t cls, pa_domain domain);
/* p lies in the pool or run whose record (its first pool's) is pool, which
 * the calling thread's heap self does not own. */
void _pa_general_free_other(pa_heap *self, pa_pool *pool, void *p, pa_domain domain);

/* ---- Domains and their layers (src/domain.c, debug.c, trace.c) --------- */

extern struct pa_fast_limits _pa_fast;

/* The process has started: the fast paths may serve it (src/start.c). */
void _pa_domains_open(void);
bool _pa_domains_opened(void);
/* The layer serving a domain now. */
const pa_layer *_pa_domain_layer(pa_domain domain);
bool _pa_domain_is_default(const pa_layer *layer, pa_domain domain);
/* pa_set_allocator's work, on valid arguments. */
int _pa_domain_set(pa_domain domain, const pa_allocator *allocator);
/* Layers that go on top of all three domains at once: debug, tracing.
 * _pa_domains_push fills layers[] from `functions`, each layer its own ctx, and
 * sets their `below`; _pa_domains_remove takes them off if still on top. */
void _pa_domains_push(pa_layer layers[3], const pa_layer *functions);
void _pa_domains_remove(const pa_layer layers[3]);
bool _pa_domains_contain(const pa_layer *layer, pa_domain domain);
void *_pa_layer_aligned(const pa_layer *layer, size_t alignment, size_t size);
/* Whether the pools or the raw layer have served anything yet. */
bool _pa_allocations_served(void);
void _pa_debug_install(void);
/* pa_setup_debug_hooks's work: 0, or -1 with EBUSY once memory was served. */
int _pa_debug_setup(void);
/* After a report of misuse outside the hooks (free lists, handles): under
 * the debug hooks the process aborts, as the hooks' own reports do. */
void _pa_debug_misuse_end(void);
bool _pa_debug_hooks_on(void);
void _pa_domains_lock(void);
void _pa_domains_unlock(void);
void _pa_trace_lock(void);
void _pa_trace_unlock(void);
/* Blocks of the pools that tracing knows the requested size of, and the
 * bytes their size classes add to it (0, 0 when not tracing). */
void _pa_trace_rounding(size_t *blocks, size_t *bytes);
/* Exit reports (src/runtime.c runs them in order): blocks still traced,
 * and sampling's last sample and snapshot. */
void _pa_trace_report_at_exit(void);
void _pa_sampler_start(void);
void _pa_sampler_at_exit(void);
/* Tracing is on (pa_trace_start, or POOLALLOC_TRACE at the start). */
bool _pa_trace_on(void);
/* Writes where p was allocated, if tracing knows; false if it does not. */
bool _pa_trace_report_block(const void *p);
size_t _pa_layer_usable_size(const pa_layer *layer, const void *p);

/* ---- The process's start (src/start.c) ----------------------------------- */

/* Secure mode's secrets, the options, then the layers they ask for, and
 * the domains opened; returns at once when done, and waits while another
 * thread does it.  The first call through an entry point makes it. */
void _pa_start(void);

/* ---- The entry points (src/api.c) ---------------------------------------- */

/* Where the inline fast paths (src/inline.h) go when they decline. */
void *_pa_entry_malloc(size_t size, pa_domain domain);
void _pa_entry_free(void *p, pa_domain domain);

/* ---- Free lists (src/freelist.c) ----------------------------------------- */

/* Frees every object the heap's bins keep (its thread is exiting, or calls
 * pa_collect). */
void _pa_freelists_flush(pa_heap *heap);
/* Adds one heap's bins to the totals (statistics walk, heaps lock held). */
void _pa_freelists_count_heap(struct pa_stats *s, const pa_heap *heap);
/* Live lists now. */
size_t _pa_freelists_live(void);
/* Fills out[0 .. max-1] with the live lists' statistics; returns how many
 * were filled. */
size_t _pa_freelists_gather(struct pa_freelist_stats *out, size_t max);
/* The debug hooks went on: lists keep nothing from now on. */
void _pa_freelists_debug_installed(void);

/* ---- Statistics and snapshots (src/stats.c, src/snapshot.c) ------------- */

/* One walk fills *s, for heaps 1..max per_heap[], and, if records is not
 * NULL, the pools; returns the number of heaps. */
size_t _pa_stats_collect(struct pa_stats *s, struct pa_heap_stats *per_heap, size_t max,
                     struct pool_records *records);
/* The JSON object of pa_stats_json, without a newline. */
void _pa_stats_json_write(FILE *out, const struct pa_stats *s, const struct pa_heap_stats *heaps,
                      size_t nheaps);

struct snapshot *_pa_snapshot_capture(void); /* NULL if out of memory */
void _pa_snapshot_write(FILE *out, const struct snapshot *snap);
void _pa_snapshot_release(struct snapshot *snap);

/* ---- Options (src/options.c) ------------------------------------------- */

extern struct _pa_options _pa_options;
void _pa_options_init(void);
/* pattern with %p replaced by the process id, into out; false if pattern
 * is empty or the result does not fit. */
bool _pa_options_expand_path(const char *pattern, char *out, size_t size);
/* Where POOLALLOC_SHOW_STATS sends the statistics at exit; -1 for nowhere. */
int _pa_options_stats_fd(void);

#pragma GCC visibility pop
#endif
