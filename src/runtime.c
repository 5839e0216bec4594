/*
 * The process's life with poolalloc, at the top: what is not the start
 * (src/start.c, below the entry points, which the first call reaches).
 *
 *   load         the key under which every thread's heap is set, whose
 *                destructor gives the heap up; the fork handlers; the
 *                sampler, when POOLALLOC_SAMPLE or POOLALLOC_SNAPSHOT is
 *                set.
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
 * Nothing below calls this file: the C library calls the key's destructor,
 * the fork handlers, and the constructor and destructor here.  The static
 * libraries are one object each (CMakeLists.txt), so a program that links
 * any of poolalloc links this file too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

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

/* The debug hooks go on top of every domain before the first allocation;
 * free lists made before then keep nothing from now on. */
int pa_setup_debug_hooks(void) {
  _pa_start(); /* the options first: POOLALLOC_DEBUG may have done it */
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

/* The key and the fork handlers need no option, so reading none here keeps
 * the options for the first call: programs that set POOLALLOC_SAMPLE or
 * POOLALLOC_SNAPSHOT themselves before their first malloc (tests do) get
 * them; the options are read here only when one is set. */
__attribute__((constructor)) static void runtime_load(void) {
  pthread_key_t exit_key;
  if (pthread_key_create(&exit_key, thread_exit) == 0) _pa_heaps_exit_key(exit_key);
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  if (getenv("POOLALLOC_SAMPLE") == NULL && getenv("POOLALLOC_SNAPSHOT") == NULL) return;
  _pa_start();
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
