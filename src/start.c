/*
 * The process's start, below every entry point, so that the first call
 * through any of them reaches it going down: the first call into any
 * domain (src/api.c), or a call that needs the options first (free lists,
 * handles, pa_set_allocator, pa_setup_debug_hooks, the library's load when
 * sampling).  In order: secure mode's secrets, the options, the debug
 * hooks and tracing they ask for, and the domains opened to the fast
 * paths.  A call the start itself makes, on the same thread, is served by
 * what is installed so far; other threads wait, so no block escapes the
 * layers the options asked for.
 *
 * The rest of the process's life (the load, a thread's exit, fork(),
 * pa_collect, the exit reports) is src/runtime.c's, at the top.
 */
#include <sched.h>

#include "internal.h"

enum { COLD, STARTING, READY };

static _Atomic int state;

/* Set while this thread reads the options and installs what they ask for. */
static _Thread_local bool starting_here __attribute__((tls_model("initial-exec")));

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
    starting_here = false;
    atomic_store_explicit(&state, READY, memory_order_release);
    _pa_domains_open();
    return;
  }
  if (starting_here) return;
  while (atomic_load_explicit(&state, memory_order_acquire) != READY) sched_yield();
}
