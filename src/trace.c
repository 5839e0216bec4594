/*
 * Tracing: a layer on top of every domain (pa_trace_start, POOLALLOC_TRACE)
 * that records each live block with the call stack that allocated it, as
 * CPython's tracemalloc does.
 *
 *   traces:      block address -> {requested size, traceback}
 *                open addressing, linear probing, backward-shift deletion
 *   tracebacks:  interned: one record per distinct stack, holding the count
 *                and bytes of the live blocks it allocated, so a snapshot
 *                reads the tracebacks and never walks the blocks
 *
 * All of it lives in memory mapped from the OS, never from the allocators it
 * watches, under one lock.  A thread inside the layer is marked: an
 * allocation made below it that comes back up through a domain (a user's
 * allocator calling pa_raw_malloc, say) is not traced twice.
 *
 * The stack is walked with the unwinder (_Unwind_Backtrace, libgcc_s: no
 * malloc, no dlopen).  Its first frames are poolalloc's own: every function
 * between a public entry point and the walk is placed in the section
 * "poolalloc_entry" (PA_ENTRY), whose bounds the linker provides, and
 * leading frames inside it are dropped, whatever the inlining.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#include "inline.h"

extern const char __start_poolalloc_entry[] __attribute__((visibility("hidden")));
extern const char __stop_poolalloc_entry[] __attribute__((visibility("hidden")));

typedef struct traceback {
  struct traceback *next; /* interning chain of its bucket */
  uint64_t hash;
  size_t count, bytes; /* live blocks allocated here */
  int frames;
  void *frame[];
} traceback;

typedef struct trace_entry {
  uintptr_t block; /* 0: free slot */
  size_t size;
  traceback *origin;
} trace_entry;

#define TRACEBACK_CHUNK (256 * 1024)
#define TRACEBACK_BUCKETS 4096

static struct {
  pthread_mutex_t lock;
  _Atomic int frames; /* 0: not tracing */
  trace_entry *entries;
  size_t capacity, used; /* capacity a power of two, 0 before the first trace */
  traceback *buckets[TRACEBACK_BUCKETS];
  char *chunk; /* traceback records: bump-allocated */
  size_t chunk_left;
  char *chunks; /* every chunk, linked through its first word */
  size_t current, peak;
} trace = {.lock = PTHREAD_MUTEX_INITIALIZER};

void _pa_trace_lock(void) { pthread_mutex_lock(&trace.lock); }
void _pa_trace_unlock(void) { pthread_mutex_unlock(&trace.lock); }

static pa_layer trace_layers[3];
static _Thread_local bool trace_busy __attribute__((tls_model("initial-exec")));
/* The block this thread is freeing, forgotten already but still reportable
 * when a debug layer below finds it corrupt. */
static _Thread_local struct {
  const void *block;
  const traceback *origin;
} trace_releasing __attribute__((tls_model("initial-exec")));

/* ---- Stacks ----------------------------------------------------------------- */

struct walk {
  void **frame;
  int wanted, got;
};

static bool in_poolalloc(uintptr_t ip) {
  return ip >= (uintptr_t)__start_poolalloc_entry && ip < (uintptr_t)__stop_poolalloc_entry;
}

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *context, void *arg) {
  struct walk *walk = arg;
  uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0) return _URC_END_OF_STACK;
  if (walk->got == 0 && in_poolalloc(ip)) return _URC_NO_REASON;
  walk->frame[walk->got++] = (void *)ip;
  return walk->got == walk->wanted ? _URC_END_OF_STACK : _URC_NO_REASON;
}

PA_ENTRY static int capture_stack(void **frame, int wanted) {
  struct walk walk = {frame, wanted, 0};
  _Unwind_Backtrace(walk_frame, &walk);
  return walk.got;
}

/* ---- Tables (called with the lock held) -------------------------------------- */

static uint64_t hash_frames(void *const *frame, int frames) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (int i = 0; i < frames; i++) hash = (hash ^ (uintptr_t)frame[i]) * 0x100000001b3ULL;
  return hash;
}

static size_t slot_of(uintptr_t block, size_t capacity) {
  return (size_t)((block >> 4) * 0x9e3779b97f4a7c15ULL >> 17) & (capacity - 1);
}

static traceback *traceback_intern(void *const *frame, int frames) {
  uint64_t hash = hash_frames(frame, frames);
  traceback **bucket = &trace.buckets[hash % TRACEBACK_BUCKETS];
  for (traceback *tb = *bucket; tb; tb = tb->next)
    if (tb->hash == hash && tb->frames == frames &&
        memcmp(tb->frame, frame, frames * sizeof *frame) == 0)
      return tb;
  size_t size = (sizeof(traceback) + frames * sizeof(void *) + 15) & ~(size_t)15;
  if (trace.chunk_left < size) {
    char *chunk = _pa_os_map(TRACEBACK_CHUNK);
    if (chunk == NULL) return NULL;
    memcpy(chunk, &trace.chunks, sizeof trace.chunks);
    trace.chunks = chunk;
    trace.chunk = chunk + 16;
    trace.chunk_left = TRACEBACK_CHUNK - 16;
  }
  traceback *tb = (traceback *)trace.chunk;
  trace.chunk += size;
  trace.chunk_left -= size;
  *tb = (traceback){.next = *bucket, .hash = hash, .frames = frames};
  memcpy(tb->frame, frame, frames * sizeof *frame);
  *bucket = tb;
  return tb;
}

static bool entries_grow(void) {
  size_t capacity = trace.capacity ? trace.capacity * 2 : 4096;
  trace_entry *fresh = _pa_os_map(capacity * sizeof *fresh);
  if (fresh == NULL) return false;
  for (size_t i = 0; i < trace.capacity; i++) {
    if (trace.entries[i].block == 0) continue;
    size_t at = slot_of(trace.entries[i].block, capacity);
    while (fresh[at].block) at = (at + 1) & (capacity - 1);
    fresh[at] = trace.entries[i];
  }
  if (trace.entries) _pa_os_unmap(trace.entries, trace.capacity * sizeof *trace.entries);
  trace.entries = fresh;
  trace.capacity = capacity;
  return true;
}

static trace_entry *entry_find(uintptr_t block) {
  if (trace.capacity == 0) return NULL;
  for (size_t at = slot_of(block, trace.capacity);; at = (at + 1) & (trace.capacity - 1)) {
    if (trace.entries[at].block == block) return &trace.entries[at];
    if (trace.entries[at].block == 0) return NULL;
  }
}

static void entry_add(uintptr_t block, size_t size, traceback *origin) {
  if ((trace.used + 1) * 2 > trace.capacity && !entries_grow()) return;
  size_t at = slot_of(block, trace.capacity);
  while (trace.entries[at].block) at = (at + 1) & (trace.capacity - 1);
  trace.entries[at] = (trace_entry){block, size, origin};
  trace.used++;
  origin->count++;
  origin->bytes += size;
  trace.current += size;
  if (trace.current > trace.peak) trace.peak = trace.current;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void entry_remove(trace_entry *entry) {
  entry->origin->count--;
  entry->origin->bytes -= entry->size;
  trace.current -= entry->size;
  trace.used--;
  size_t mask = trace.capacity - 1;
  size_t hole = (size_t)(entry - trace.entries);
  for (size_t at = (hole + 1) & mask; trace.entries[at].block; at = (at + 1) & mask) {
    size_t home = slot_of(trace.entries[at].block, trace.capacity);
    if (((at - home) & mask) >= ((at - hole) & mask)) {
      trace.entries[hole] = trace.entries[at];
      hole = at;
    }
  }
  trace.entries[hole].block = 0;
}

static void tables_clear(void) {
  if (trace.entries) _pa_os_unmap(trace.entries, trace.capacity * sizeof *trace.entries);
  while (trace.chunks) {
    char *next;
    memcpy(&next, trace.chunks, sizeof next);
    _pa_os_unmap(trace.chunks, TRACEBACK_CHUNK);
    trace.chunks = next;
  }
  memset(trace.buckets, 0, sizeof trace.buckets);
  trace.entries = NULL;
  trace.capacity = trace.used = trace.current = trace.peak = trace.chunk_left = 0;
  trace.chunk = NULL;
}

/* Every traced pool block's class size less its requested size (large
 * blocks are not a class's).  Under the debug hooks the pool block holds
 * their header and guards too, so nothing is counted then. */
void _pa_trace_rounding(size_t *blocks, size_t *bytes) {
  *blocks = *bytes = 0;
  if (_pa_debug_hooks_installed) return;
  pthread_mutex_lock(&trace.lock);
  for (size_t i = 0; i < trace.capacity; i++) {
    const trace_entry *entry = &trace.entries[i];
    pa_block_info block;
    if (entry->block == 0 || !pa_block_of((void *)entry->block, &block) ||
        block.state == PA_POOL_LARGE)
      continue;
    (*blocks)++;
    *bytes += block.size - entry->size;
  }
  pthread_mutex_unlock(&trace.lock);
}

/* ---- The layer ---------------------------------------------------------------- */

PA_ENTRY static void trace_record(void *p, size_t size) {
  int frames = atomic_load_explicit(&trace.frames, memory_order_relaxed);
  if (p == NULL || frames == 0) return;
  void *frame[PA_TRACE_MAX_FRAMES];
  int got = capture_stack(frame, frames);
  pthread_mutex_lock(&trace.lock);
  if (atomic_load_explicit(&trace.frames, memory_order_relaxed) == frames) {
    traceback *origin = traceback_intern(frame, got);
    if (origin) entry_add((uintptr_t)p, size, origin);
  }
  pthread_mutex_unlock(&trace.lock);
}

static void trace_forget(void *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&trace.lock);
  trace_entry *entry = entry_find((uintptr_t)p);
  trace_releasing.block = p;
  trace_releasing.origin = entry ? entry->origin : NULL;
  if (entry) entry_remove(entry);
  pthread_mutex_unlock(&trace.lock);
}

/* Each hook: the layer below does the work; this thread is marked meanwhile
 * so nested calls only pass through. */
#define BELOW(ctx) (((const pa_layer *)(ctx))->below)

PA_ENTRY static void *trace_malloc(void *ctx, size_t size) {
  const pa_layer *below = BELOW(ctx);
  if (trace_busy) return below->api.malloc(below->api.ctx, size);
  trace_busy = true;
  void *p = below->api.malloc(below->api.ctx, size);
  trace_record(p, size);
  trace_busy = false;
  return p;
}

PA_ENTRY static void *trace_calloc(void *ctx, size_t count, size_t size) {
  const pa_layer *below = BELOW(ctx);
  if (trace_busy) return below->api.calloc(below->api.ctx, count, size);
  trace_busy = true;
  void *p = below->api.calloc(below->api.ctx, count, size);
  trace_record(p, count * size); /* no overflow: the layer below refused it */
  trace_busy = false;
  return p;
}

PA_ENTRY static void *trace_realloc(void *ctx, void *p, size_t size) {
  const pa_layer *below = BELOW(ctx);
  if (trace_busy) return below->api.realloc(below->api.ctx, p, size);
  trace_busy = true;
  void *fresh = below->api.realloc(below->api.ctx, p, size);
  if (fresh || size == 0) trace_forget(p);
  trace_record(fresh, size);
  trace_busy = false;
  return fresh;
}

PA_ENTRY static void trace_free(void *ctx, void *p) {
  const pa_layer *below = BELOW(ctx);
  if (!trace_busy) trace_forget(p);
  below->api.free(below->api.ctx, p);
  trace_releasing.block = NULL;
}

PA_ENTRY static void *trace_aligned(void *ctx, size_t alignment, size_t size) {
  const pa_layer *below = BELOW(ctx);
  if (trace_busy) return _pa_layer_aligned(below, alignment, size);
  trace_busy = true;
  void *p = _pa_layer_aligned(below, alignment, size);
  trace_record(p, size);
  trace_busy = false;
  return p;
}

static size_t trace_usable_size(void *ctx, const void *p) {
  return _pa_layer_usable_size(BELOW(ctx), p);
}

int pa_trace_start(int frames) {
  if (frames < 1 || frames > PA_TRACE_MAX_FRAMES) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock(&trace.lock);
  tables_clear();
  bool grown = entries_grow();
  if (grown) atomic_store_explicit(&trace.frames, frames, memory_order_relaxed);
  pthread_mutex_unlock(&trace.lock);
  if (!grown) {
    errno = ENOMEM;
    return -1;
  }
  static const pa_layer functions = {
      .api = {NULL, trace_malloc, trace_calloc, trace_realloc, trace_free},
      .aligned = trace_aligned,
      .usable_size = trace_usable_size,
  };
  if (!_pa_domains_contain(&trace_layers[PA_DOMAIN_MEM], PA_DOMAIN_MEM))
    _pa_domains_push(trace_layers, &functions);
  return 0;
}

/* Taken off the domains when still on top; otherwise it stays and passes
 * every call through. */
void pa_trace_stop(void) {
  _pa_domains_remove(trace_layers);
  pthread_mutex_lock(&trace.lock);
  atomic_store_explicit(&trace.frames, 0, memory_order_relaxed);
  tables_clear();
  pthread_mutex_unlock(&trace.lock);
}

/* Before the process's start (src/start.c), what POOLALLOC_TRACE will
 * trace then. */
int pa_trace_frames(void) {
  int frames = atomic_load_explicit(&trace.frames, memory_order_relaxed);
  if (frames > 0 || _pa_domains_opened()) return frames;
  _pa_options_init();
  return _pa_options.trace;
}

bool _pa_trace_on(void) { return atomic_load_explicit(&trace.frames, memory_order_relaxed) > 0; }

void pa_trace_get_traced_memory(size_t *current, size_t *peak) {
  pthread_mutex_lock(&trace.lock);
  if (current) *current = trace.current;
  if (peak) *peak = trace.peak;
  pthread_mutex_unlock(&trace.lock);
}

/* ---- Reading the traces ------------------------------------------------------- */

void pa_trace_format_frame(void *frame, char *buf, size_t size) {
  Dl_info info;
  /* frame is a return address: the call is the byte before it */
  if (dladdr((char *)frame - 1, &info) == 0 || info.dli_fname == NULL) {
    snprintf(buf, size, "%p", frame);
  } else if (info.dli_sname) {
    snprintf(buf, size, "%p %s+0x%tx (%s)", frame, info.dli_sname,
             (char *)frame - (char *)info.dli_saddr, info.dli_fname);
  } else {
    snprintf(buf, size, "%p (%s+0x%tx)", frame, info.dli_fname,
             (char *)frame - (char *)info.dli_fbase);
  }
}

/* For the debug hooks' reports: where p was allocated, if it is traced. */
bool _pa_trace_report_block(const void *p) {
  const traceback *origin = trace_releasing.block == p ? trace_releasing.origin : NULL;
  if (origin == NULL && pthread_mutex_trylock(&trace.lock) == 0) {
    trace_entry *entry = entry_find((uintptr_t)p);
    origin = entry ? entry->origin : NULL;
    pthread_mutex_unlock(&trace.lock);
  }
  if (origin == NULL) return false;
  _pa_message("  allocated at (most recent call first):");
  for (int i = 0; i < origin->frames; i++) {
    char line[256];
    pa_trace_format_frame(origin->frame[i], line, sizeof line);
    _pa_message("    #%d %s", i, line);
  }
  return true;
}

struct pa_snapshot {
  size_t mapped; /* bytes of this mapping */
  size_t sites, count, bytes;
  struct pa_trace_site site[];
};

static int by_bytes(const void *a, const void *b) {
  const struct pa_trace_site *x = a, *y = b;
  return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

pa_snapshot *pa_trace_snapshot(void) {
  pthread_mutex_lock(&trace.lock);
  if (atomic_load_explicit(&trace.frames, memory_order_relaxed) == 0) {
    pthread_mutex_unlock(&trace.lock);
    errno = EINVAL;
    return NULL;
  }
  size_t sites = 0;
  for (size_t b = 0; b < TRACEBACK_BUCKETS; b++)
    for (traceback *tb = trace.buckets[b]; tb; tb = tb->next) sites += tb->count > 0;
  size_t mapped = sizeof(pa_snapshot) + sites * sizeof(struct pa_trace_site);
  pa_snapshot *snapshot = _pa_os_map(mapped);
  if (snapshot == NULL) {
    pthread_mutex_unlock(&trace.lock);
    return NULL;
  }
  snapshot->mapped = mapped;
  for (size_t b = 0; b < TRACEBACK_BUCKETS; b++) {
    for (traceback *tb = trace.buckets[b]; tb; tb = tb->next) {
      if (tb->count == 0) continue;
      struct pa_trace_site *site = &snapshot->site[snapshot->sites++];
      site->count = tb->count;
      site->bytes = tb->bytes;
      site->frames = tb->frames;
      memcpy(site->frame, tb->frame, tb->frames * sizeof(void *));
      snapshot->count += tb->count;
      snapshot->bytes += tb->bytes;
    }
  }
  pthread_mutex_unlock(&trace.lock);
  qsort(snapshot->site, snapshot->sites, sizeof *snapshot->site, by_bytes);
  return snapshot;
}

void pa_snapshot_free(pa_snapshot *snapshot) {
  if (snapshot) _pa_os_unmap(snapshot, snapshot->mapped);
}

size_t pa_snapshot_sites(const pa_snapshot *snapshot) { return snapshot->sites; }

const struct pa_trace_site *pa_snapshot_site(const pa_snapshot *snapshot, size_t i) {
  return i < snapshot->sites ? &snapshot->site[i] : NULL;
}

void pa_snapshot_totals(const pa_snapshot *snapshot, size_t *count, size_t *bytes) {
  if (count) *count = snapshot->count;
  if (bytes) *bytes = snapshot->bytes;
}

static void print_frames(FILE *out, const struct pa_trace_site *site) {
  for (int i = 0; i < site->frames; i++) {
    char line[256];
    pa_trace_format_frame(site->frame[i], line, sizeof line);
    fprintf(out, "      %s\n", line);
  }
}

/* The `limit` largest by count, by selection: limit is small. */
static void print_top_by_count(const pa_snapshot *snapshot, FILE *out, size_t limit) {
  size_t shown_below = (size_t)-1, shown_index = (size_t)-1;
  for (size_t n = 0; n < limit && n < snapshot->sites; n++) {
    size_t best = (size_t)-1;
    for (size_t i = 0; i < snapshot->sites; i++) {
      size_t c = snapshot->site[i].count;
      bool after_last = c < shown_below || (c == shown_below && i > shown_index);
      if (after_last && (best == (size_t)-1 || c > snapshot->site[best].count)) best = i;
    }
    if (best == (size_t)-1) break;
    const struct pa_trace_site *site = &snapshot->site[best];
    fprintf(out, "  #%zu: %zu blocks, %zu bytes\n", n + 1, site->count, site->bytes);
    print_frames(out, site);
    shown_below = site->count;
    shown_index = best;
  }
}

void pa_snapshot_print(const pa_snapshot *snapshot, FILE *out, size_t limit) {
  fprintf(out, "%zu live traced blocks, %zu bytes, from %zu allocation sites\n",
          snapshot->count, snapshot->bytes, snapshot->sites);
  if (snapshot->sites == 0) return;
  fprintf(out, "Top %zu sites by bytes:\n", limit);
  for (size_t i = 0; i < limit && i < snapshot->sites; i++) {
    const struct pa_trace_site *site = &snapshot->site[i];
    fprintf(out, "  #%zu: %zu bytes in %zu blocks (average %zu)\n", i + 1, site->bytes,
            site->count, site->bytes / site->count);
    print_frames(out, site);
  }
  fprintf(out, "Top %zu sites by count:\n", limit);
  print_top_by_count(snapshot, out, limit);
}

static bool same_traceback(const struct pa_trace_site *a, const struct pa_trace_site *b) {
  return a->frames == b->frames && memcmp(a->frame, b->frame, a->frames * sizeof(void *)) == 0;
}

struct site_change {
  const struct pa_trace_site *site; /* in newer, or in older when it is gone */
  long long bytes, count;           /* newer - older */
  size_t now_bytes, now_count;
};

static int by_change(const void *a, const void *b) {
  const struct site_change *x = a, *y = b;
  long long ax = x->bytes < 0 ? -x->bytes : x->bytes, ay = y->bytes < 0 ? -y->bytes : y->bytes;
  if (ax != ay) return ax < ay ? 1 : -1;
  return (x->bytes < y->bytes) - (x->bytes > y->bytes);
}

void pa_snapshot_compare(const pa_snapshot *newer, const pa_snapshot *older,
                               FILE *out, size_t limit) {
  size_t mapped = (newer->sites + older->sites + 1) * sizeof(struct site_change);
  struct site_change *change = _pa_os_map(mapped);
  if (change == NULL) {
    fprintf(out, "(no memory to compare snapshots)\n");
    return;
  }
  size_t changes = 0;
  for (size_t i = 0; i < newer->sites; i++) {
    const struct pa_trace_site *site = &newer->site[i], *before = NULL;
    for (size_t j = 0; j < older->sites && before == NULL; j++)
      if (same_traceback(site, &older->site[j])) before = &older->site[j];
    change[changes++] = (struct site_change){
        site, (long long)site->bytes - (long long)(before ? before->bytes : 0),
        (long long)site->count - (long long)(before ? before->count : 0), site->bytes,
        site->count};
  }
  for (size_t j = 0; j < older->sites; j++) {
    bool kept = false;
    for (size_t i = 0; i < newer->sites && !kept; i++)
      kept = same_traceback(&older->site[j], &newer->site[i]);
    if (!kept)
      change[changes++] = (struct site_change){&older->site[j], -(long long)older->site[j].bytes,
                                               -(long long)older->site[j].count, 0, 0};
  }
  qsort(change, changes, sizeof *change, by_change);
  fprintf(out, "%+lld bytes, %+lld blocks since the older snapshot; top %zu changes:\n",
          (long long)newer->bytes - (long long)older->bytes,
          (long long)newer->count - (long long)older->count, limit);
  for (size_t i = 0, shown = 0; i < changes && shown < limit; i++) {
    if (change[i].bytes == 0 && change[i].count == 0) continue;
    fprintf(out, "  %+lld bytes (%+lld blocks), now %zu bytes in %zu blocks\n", change[i].bytes,
            change[i].count, change[i].now_bytes, change[i].now_count);
    print_frames(out, change[i].site);
    shown++;
  }
  _pa_os_unmap(change, mapped);
}

/* POOLALLOC_TRACE: what is still allocated at exit, by site. */
void _pa_trace_report_at_exit(void) {
  if (_pa_options.trace == 0 || pa_trace_frames() == 0) return;
  pa_snapshot *snapshot = pa_trace_snapshot();
  if (snapshot == NULL) return;
  FILE *out = fdopen(dup(2), "w");
  if (out) {
    fprintf(out, "poolalloc: blocks still allocated at exit of process %d:\n", (int)getpid());
    pa_snapshot_print(snapshot, out, 10);
    fclose(out);
  }
  pa_snapshot_free(snapshot);
}
