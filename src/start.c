/*
 * The process's start, and fork(): below every entry point, so that the
 * first call through any of them reaches it going down.
 *
 *   start        the first call into any domain (src/api.c), or a call
 *                that needs the options first (free lists, handles,
 *                pa_set_allocator, pa_setup_debug_hooks, the library's
 *                load when sampling): secure mode's secrets, the options,
 *                then the debug hooks and tracing they ask for, the fork
 *                handlers, and the domains opened to the fast paths.  A
 *                call the start itself makes, on the same thread, is served
 *                by what is installed so far; other threads wait, so no
 *                block escapes the layers the options asked for.
 *   fork()       every lock, in one order: tracing, domains, heaps, large
 *                spans, arenas, metadata; the child abandons the heaps of
 *                the threads it does not have.
 *
 * The rest of the process's life (a thread's exit, pa_collect, the exit
 * reports) is src/runtime.c's, at the top.
 */
#include <sched.h>

#include "internal.h"

enum { COLD, STARTING, READY };

static _Atomic int state;

/* Set while this thread reads the options and installs what they ask for. */
static _Thread_local bool starting_here __attribute__((tls_model("initial-exec")));

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

/* Tracing the program started itself, before its first allocation, is
 * left as it is: the program's call wins over POOLALLOC_TRACE, as it does
 * when it comes later. */
static void layers_install(void) {
  if (_pa_options.debug) _pa_debug_install();
  if (_pa_options.trace > 0 && !_pa_trace_on()) pa_trace_start(_pa_options.trace);
}

void _pa_start(void) {
  if (atomic_load_explicit(&state, memory_order_acquire) == READY) return;
  int expected = COLD;
  if (atomic_compare_exchange_strong(&state, &expected, STARTING)) {
    starting_here = true;
    _pa_secure_init();
    _pa_options_init();
    layers_install();
    /* last: pthread_atfork may call malloc, served by what is installed */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    starting_here = false;
    atomic_store_explicit(&state, READY, memory_order_release);
    _pa_domains_open();
    return;
  }
  if (starting_here) return;
  while (atomic_load_explicit(&state, memory_order_acquire) != READY) sched_yield();
}
