/*
 * The process's life with poolalloc, in one place, above every layer:
 *
 *   start        the first call into any domain (or the library's load,
 *                for the sampler): secure mode's secrets, the key under
 *                which every thread's heap is set, the options, then the
 *                debug hooks and tracing they ask for, the fork handlers,
 *                and the domains opened to the fast paths.  A call the
 *                start itself makes, on the same thread, is served by what
 *                is installed so far; other threads wait, so no block
 *                escapes the layers the options asked for.
 *   a thread     at its exit (the key's destructor): free lists flushed
 *                while its frees are still the owner's, then its heap
 *                abandoned for the next thread.
 *   fork()       every lock, in one order: tracing, domains, heaps,
 *                large spans, arenas, metadata; the child abandons the
 *                heaps of the threads it does not have.
 *   pa_collect   free lists, the heap, exited threads' heaps, cached
 *                large spans, free arenas.
 *   exit         one routine, the reports in a fixed order: blocks still
 *                traced (POOLALLOC_TRACE), the statistics
 *                (POOLALLOC_SHOW_STATS), the last sample and the snapshot
 *                (POOLALLOC_SAMPLE, POOLALLOC_SNAPSHOT).
 *
 * Only the start is reached from below (from src/domain.c, on the
 * process's first call): nothing else in a lower file calls up.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

enum { COLD, STARTING, READY };

static struct {
  _Atomic int state;
} runtime;

/* Set while this thread reads the options and installs what they ask for. */
static _Thread_local bool starting_here __attribute__((tls_model("initial-exec")));

/* ---- Threads ------------------------------------------------------------- */

static void thread_exit(void *arg) {
  pa_heap *heap = arg;
  _pa_freelists_flush(heap); /* while its frees are still the owner's */
  _pa_heap_abandon(heap);
}

static void fork_prepare(void) {
  _pa_trace_lock();
  _pa_domains_lock();
  _pa_heaps_lock();
  _pa_large_lock();
  _pa_arenas_lock();
  _pa_meta_lock();
}

static void fork_parent(void) {
  _pa_meta_unlock();
  _pa_arenas_unlock();
  _pa_large_unlock();
  _pa_heaps_unlock();
  _pa_domains_unlock();
  _pa_trace_unlock();
}

static void fork_child(void) {
  _pa_meta_unlock();
  _pa_arenas_unlock();
  _pa_large_unlock();
  _pa_domains_unlock();
  _pa_trace_unlock();
  _pa_heaps_fork_child(); /* unlocks the heaps */
}

void _pa_runtime_start(void) {
  int expected = COLD;
  if (atomic_compare_exchange_strong(&runtime.state, &expected, STARTING)) {
    starting_here = true;
    _pa_secure_init();
    pthread_key_t exit_key;
    if (pthread_key_create(&exit_key, thread_exit) == 0) _pa_heaps_exit_key(exit_key);
    _pa_options_init();
    if (_pa_options.debug) _pa_debug_install();
    if (_pa_options.trace > 0) pa_trace_start(_pa_options.trace);
    /* last: pthread_atfork may call malloc, served by what is installed */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    starting_here = false;
    atomic_store_explicit(&runtime.state, READY, memory_order_release);
    _pa_domains_open();
    return;
  }
  if (starting_here) return;
  while (atomic_load_explicit(&runtime.state, memory_order_acquire) != READY) sched_yield();
}

/* The debug hooks go on top of every domain before the first allocation;
 * free lists made before then keep nothing from now on. */
int pa_setup_debug_hooks(void) {
  _pa_runtime_start(); /* the options first: POOLALLOC_DEBUG may have done it */
  int status = _pa_debug_setup();
  if (status == 0) _pa_freelists_debug_installed();
  return status;
}

void pa_collect(void) {
  if (_pa_thread_heap != &_pa_empty_heap) {
    _pa_freelists_flush(_pa_thread_heap);
    _pa_heap_collect(_pa_thread_heap);
  }
  _pa_heaps_collect_abandoned();
  _pa_large_release_cached();
  _pa_arenas_release_empty();
}

/* ---- Load and exit --------------------------------------------------------- */

/* Programs that set POOLALLOC_SAMPLE or POOLALLOC_SNAPSHOT themselves before
 * their first malloc (tests do) get them: the options are read here only
 * when one is set. */
__attribute__((constructor)) static void runtime_load(void) {
  if (getenv("POOLALLOC_SAMPLE") == NULL && getenv("POOLALLOC_SNAPSHOT") == NULL) return;
  _pa_runtime_start();
  _pa_sampler_start();
}

/* POOLALLOC_SHOW_STATS: what passed through each layer, and the peaks, in
 * one buffer written at once, so reports of processes exiting together do
 * not interleave in an appended file. */
static void stats_report_at_exit(void) {
  int fd = _pa_options_stats_fd();
  if (fd < 0) return;
  FILE *out = fdopen(fd, "w");
  if (out == NULL) return;
  static char report[64 * 1024];
  setvbuf(out, report, _IOFBF, sizeof report);
  fprintf(out, "poolalloc statistics at exit of process %d:\n", (int)getpid());
  pa_stats_print(out);
  fclose(out);
}

__attribute__((destructor)) static void runtime_exit(void) {
  _pa_trace_report_at_exit();
  stats_report_at_exit();
  _pa_sampler_at_exit();
}
