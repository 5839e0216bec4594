/* A program dlopens libpoolalloc.so, a thread allocates from it, the
 * program dlcloses it, then the thread exits: the thread-exit key's
 * destructor and the thread's blocks are poolalloc's, so the library
 * stays mapped (linked -z nodelete).  Unmapped, the exit jumps into
 * nothing: SIGSEGV.
 *
 *   dlclose_thread LIBPOOLALLOC_SO */
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

static void *(*lib_malloc)(size_t);
static void (*lib_free)(void *);
static sem_t allocated, closed;
static char *kept;

static void *worker(void *arg) {
  (void)arg;
  lib_free(lib_malloc(64));
  kept = lib_malloc(32);
  strcpy(kept, "still here");
  sem_post(&allocated);
  sem_wait(&closed);
  return NULL;
}

int main(int argc, char **argv) {
  void *lib = argc == 2 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", argc == 2 ? dlerror() : "no library given");
    return 2;
  }
  lib_malloc = (void *(*)(size_t))dlsym(lib, "pa_malloc");
  lib_free = (void (*)(void *))dlsym(lib, "pa_free");
  if (lib_malloc == NULL || lib_free == NULL) return 3;
  sem_init(&allocated, 0, 0);
  sem_init(&closed, 0, 0);
  pthread_t thread;
  if (pthread_create(&thread, NULL, worker, NULL) != 0) return 4;
  sem_wait(&allocated);
  if (dlclose(lib) != 0) return 5;
  sem_post(&closed);
  pthread_join(thread, NULL);
  int ok = strcmp(kept, "still here") == 0;
  lib_free(kept);
  printf("the thread exited and its block was freed after dlclose: %s\n", ok ? "ok" : "corrupt");
  return ok ? 0 : 1;
}
