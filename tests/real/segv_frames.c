/* Preloaded beside poolalloc by tests/real/faults_python.sh: on SIGSEGV it
 * writes the crashing thread's frames to stderr (exported symbols, from
 * glibc's backtrace, which neither allocates nor needs a debugger), then
 * dies of the signal as before.  The test tells a crash in CPython's own
 * code from one in poolalloc by them. */
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static char alt_stack[64 * 1024];

static void on_segv(int sig) {
  static const char header[] = "segv_frames:\n";
  void *frames[16];
  if (write(STDERR_FILENO, header, sizeof header - 1) < 0) _exit(128 + sig);
  backtrace_symbols_fd(frames, backtrace(frames, 16), STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void segv_frames_install(void) {
  void *first[1];
  backtrace(first, 1); /* loads the unwinder now, not in the handler */
  stack_t stack = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack};
  sigaltstack(&stack, NULL);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_segv;
  action.sa_flags = SA_ONSTACK;
  sigaction(SIGSEGV, &action, NULL);
}
