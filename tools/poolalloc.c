/*
 * poolalloc: run any program on poolalloc and show what its heap did.
 *
 *   poolalloc run [--stats] [--map FILE.html] [--sample MS] [--debug]
 *                 [--trace N] -- CMD [ARGS...]
 *   poolalloc map SNAPSHOT.json [--samples FILE.jsonl] -o FILE.html
 *
 * `run` preloads the override library into CMD and talks to it through the
 * environment (src/sample.c, src/options.c): the statistics, the samples and
 * the heap snapshots land in a private temporary directory, named by process
 * id, and this program reads the ones of the process it started.  The map is
 * tools/heapmap.html with the data put in; it needs no network to open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SAMPLE_MS 50
#define EXIT_USAGE 2

extern const char poolalloc_heapmap_html[];
extern const size_t poolalloc_heapmap_html_size;

static const char usage_text[] =
    "usage: poolalloc run [OPTIONS] -- CMD [ARGS...]\n"
    "       poolalloc map SNAPSHOT.json [--samples FILE.jsonl] -o FILE.html\n"
    "       poolalloc --help | --version\n"
    "\n"
    "run: runs CMD with poolalloc as its malloc (the override library preloaded)\n"
    "and exits with CMD's exit status (128 + N if a signal N ended it).\n"
    "  --stats          print the allocator's statistics when CMD exits\n"
    "  --map FILE.html  write a heap map: every arena and pool at the moment of\n"
    "                   the most live bytes and at exit, and charts of live\n"
    "                   bytes, arenas held and RSS over the run\n"
    "  --sample MS      sample every MS milliseconds for the map (default 50)\n"
    "  --debug          debug hooks: report overflows, double and invalid frees,\n"
    "                   use after free (POOLALLOC_DEBUG=1)\n"
    "  --trace N        trace allocations with N frames each; blocks still live\n"
    "                   at exit are reported by where they were allocated\n"
    "                   (POOLALLOC_TRACE=N)\n"
    "  --library PATH   the override library to preload (default: the one\n"
    "                   installed with this program; or $POOLALLOC_LIBRARY)\n"
    "Only the process CMD starts as is reported; processes it starts in turn\n"
    "run on poolalloc too.\n"
    "\n"
    "map: turns a snapshot written by pa_heap_snapshot() (or by a run) and,\n"
    "optionally, samples into the same HTML page.\n";

struct run_options {
  bool stats, debug;
  const char *map;
  int sample_ms;
  int trace;
  const char *library;
  char **command;
};

static void usage_error(const char *format, const char *arg) {
  fprintf(stderr, "poolalloc: ");
  fprintf(stderr, format, arg);
  fprintf(stderr, "\nTry 'poolalloc --help'.\n");
  exit(EXIT_USAGE);
}

/* A whole number in [min, max], or a usage error naming the option. */
static int parse_number(const char *option, const char *text, int min, int max) {
  char *end;
  errno = 0;
  long value = text ? strtol(text, &end, 10) : 0;
  if (text == NULL || *text == '\0' || *end != '\0' || errno || value < min || value > max) {
    char message[128];
    snprintf(message, sizeof message, "%s wants a number from %d to %d, not '%%s'", option, min,
             max);
    usage_error(message, text ? text : "");
  }
  return (int)value;
}

static const char *option_value(char **argv, int *i, const char *option) {
  if (argv[*i + 1] == NULL) usage_error("%s needs a value", option);
  return argv[++*i];
}

static void parse_run(char **argv, struct run_options *opt) {
  int i = 0;
  for (; argv[i]; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      i++;
      break;
    }
    if (arg[0] != '-') break;
    if (strcmp(arg, "--stats") == 0) {
      opt->stats = true;
    } else if (strcmp(arg, "--debug") == 0) {
      opt->debug = true;
    } else if (strcmp(arg, "--map") == 0) {
      opt->map = option_value(argv, &i, arg);
    } else if (strcmp(arg, "--sample") == 0) {
      opt->sample_ms = parse_number(arg, option_value(argv, &i, arg), 1, 3600000);
    } else if (strcmp(arg, "--trace") == 0) {
      opt->trace = parse_number(arg, option_value(argv, &i, arg), 1, 64);
    } else if (strcmp(arg, "--library") == 0) {
      opt->library = option_value(argv, &i, arg);
    } else {
      usage_error("unknown option '%s'", arg);
    }
  }
  if (argv[i] == NULL) usage_error("run needs a command to run%s", "");
  if (opt->sample_ms && opt->map == NULL) usage_error("--sample needs --map%s", "");
  if (opt->map && opt->sample_ms == 0) opt->sample_ms = DEFAULT_SAMPLE_MS;
  opt->command = &argv[i];
}

/* ---- Files --------------------------------------------------------------- */

/* The whole file, NUL-terminated; NULL if it cannot be read. */
static char *read_file(const char *path) {
  FILE *in = fopen(path, "rb");
  if (in == NULL) return NULL;
  size_t capacity = 1 << 16, n = 0;
  char *text = malloc(capacity);
  size_t got;
  while (text && (got = fread(text + n, 1, capacity - n - 1, in)) > 0) {
    n += got;
    if (capacity - n <= 1) {
      char *grown = realloc(text, capacity * 2);
      if (grown == NULL) free(text);
      text = grown;
      capacity *= 2;
    }
  }
  fclose(in);
  if (text) text[n] = '\0';
  return text;
}

/* The directory of this executable, for finding the library beside it. */
static bool self_directory(char *out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  if (n <= 0) return false;
  out[n] = '\0';
  char *slash = strrchr(out, '/');
  if (slash == NULL) return false;
  *slash = '\0';
  return true;
}

static const char *find_library(const char *chosen, char *buf, size_t size) {
  if (chosen == NULL) chosen = getenv("POOLALLOC_LIBRARY");
  if (chosen) return chosen;
  char dir[PATH_MAX];
  if (!self_directory(dir, sizeof dir)) return NULL;
  /* the build tree keeps both in one directory; an install puts the
   * program in bin/ and the library in the library directory */
  const char *candidates[] = {"%s/libpoolalloc-override.so",
                              "%s/../" POOLALLOC_LIBDIR "/libpoolalloc-override.so"};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
    int n = snprintf(buf, size, candidates[i], dir);
    if (n > 0 && (size_t)n < size && access(buf, R_OK) == 0) return buf;
  }
  return NULL;
}

static void remove_directory(const char *path) {
  DIR *dir = opendir(path);
  if (dir == NULL) return;
  struct dirent *entry;
  char file[PATH_MAX];
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.') continue;
    snprintf(file, sizeof file, "%s/%s", path, entry->d_name);
    unlink(file);
  }
  closedir(dir);
  rmdir(path);
}

/* ---- The map page -------------------------------------------------------- */

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20 || c == '<') /* '<': no "</script>" can end the data */
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

/* Sample lines joined into a JSON array; a torn last line is dropped. */
static size_t write_samples(FILE *out, const char *text) {
  size_t n = 0;
  fputc('[', out);
  while (text && *text) {
    const char *end = strchr(text, '\n');
    if (end == NULL) break;
    if (end > text && end[-1] == '}') {
      if (n++) fputc(',', out);
      fwrite(text, 1, (size_t)(end - text), out);
    }
    text = end + 1;
  }
  fputc(']', out);
  return n;
}

struct map_data {
  const char *command; /* NULL for `poolalloc map` */
  int status;          /* -1: none */
  int sample_ms;
  const char *snapshot; /* JSON text, or NULL */
  const char *samples;  /* JSON lines, or NULL */
};

static int write_map(const char *path, const struct map_data *data, size_t *nsamples) {
  static const char marker[] = "/*POOLALLOC_DATA*/null";
  const char *at = strstr(poolalloc_heapmap_html, marker);
  FILE *out = fopen(path, "w");
  if (out == NULL || at == NULL) {
    fprintf(stderr, "poolalloc: cannot write %s: %s\n", path, strerror(errno));
    if (out) fclose(out);
    return -1;
  }
  fwrite(poolalloc_heapmap_html, 1, (size_t)(at - poolalloc_heapmap_html), out);
  fputs("{\"command\":", out);
  if (data->command)
    json_string(out, data->command);
  else
    fputs("null", out);
  fprintf(out, ",\"status\":");
  if (data->status >= 0)
    fprintf(out, "%d", data->status);
  else
    fputs("null", out);
  fprintf(out, ",\"sample_ms\":%d,\"snapshot\":", data->sample_ms);
  fputs(data->snapshot ? data->snapshot : "null", out);
  fputs(",\"samples\":", out);
  *nsamples = write_samples(out, data->samples);
  fputs("}", out);
  const char *rest = at + strlen(marker);
  fwrite(rest, 1, poolalloc_heapmap_html_size - (size_t)(rest - poolalloc_heapmap_html), out);
  if (fclose(out) != 0) {
    fprintf(stderr, "poolalloc: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* ---- run ----------------------------------------------------------------- */

/* name=DIR/FILE, where file_pattern may hold %p for the process id. */
static void set_env_path(const char *name, const char *dir, const char *file_pattern) {
  char buf[PATH_MAX + 64];
  snprintf(buf, sizeof buf, "%s/%s", dir, file_pattern);
  setenv(name, buf, 1);
}

static void set_env_number(const char *name, int value) {
  char buf[16];
  snprintf(buf, sizeof buf, "%d", value);
  setenv(name, buf, 1);
}

static void prepare_environment(const struct run_options *opt, const char *library,
                                const char *dir) {
  const char *preload = getenv("LD_PRELOAD");
  char buf[2 * PATH_MAX];
  if (preload && *preload)
    snprintf(buf, sizeof buf, "%s:%s", library, preload);
  else
    snprintf(buf, sizeof buf, "%s", library);
  setenv("LD_PRELOAD", buf, 1);
  if (opt->stats) set_env_path("POOLALLOC_SHOW_STATS", dir, "stats-%p.txt");
  if (opt->debug) setenv("POOLALLOC_DEBUG", "1", 1);
  if (opt->trace) set_env_number("POOLALLOC_TRACE", opt->trace);
  if (opt->map) {
    set_env_number("POOLALLOC_SAMPLE", opt->sample_ms);
    set_env_path("POOLALLOC_SAMPLE_FILE", dir, "samples-%p.jsonl");
    set_env_path("POOLALLOC_SNAPSHOT", dir, "snapshot-%p.json");
  }
}

static char *command_line(char **command) {
  size_t size = 1;
  for (char **a = command; *a; a++) size += strlen(*a) + 1;
  char *line = malloc(size);
  if (line == NULL) return NULL;
  line[0] = '\0';
  for (char **a = command; *a; a++) {
    if (a != command) strcat(line, " ");
    strcat(line, *a);
  }
  return line;
}

/* What the sampler has said so far, read as the file grows. */
struct progress {
  bool tty;
  double started;
  double last_shown;
  long offset;
  size_t samples;
  char last[256];
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double sample_field(const char *line, const char *key) {
  const char *at = strstr(line, key);
  return at ? strtod(at + strlen(key), NULL) : 0;
}

static void progress_read(struct progress *p, const char *path) {
  FILE *in = fopen(path, "r");
  if (in == NULL) return;
  fseek(in, p->offset, SEEK_SET);
  char line[256];
  while (fgets(line, sizeof line, in)) {
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n') break; /* torn: read again later */
    p->offset += (long)len;
    p->samples++;
    memcpy(p->last, line, len + 1);
  }
  fclose(in);
}

/* A line on stderr while the map is sampled: updated in place on a
 * terminal every second, a new line every ten seconds otherwise. */
static void progress_show(struct progress *p, const char *samples_path) {
  double now = now_seconds();
  double every = p->tty ? 1.0 : 10.0;
  if (now - p->last_shown < every) return;
  p->last_shown = now;
  progress_read(p, samples_path);
  char live[32], rss[32];
  snprintf(live, sizeof live, "%.1f MiB", sample_field(p->last, "\"live\":") / 1048576.0);
  snprintf(rss, sizeof rss, "%.1f MiB", sample_field(p->last, "\"rss\":") / 1048576.0);
  fprintf(stderr, "%spoolalloc: sampling, %.0f s, %zu samples, live %s, %.0f arenas, RSS %s%s",
          p->tty ? "\r\033[K" : "", now - p->started, p->samples, live,
          sample_field(p->last, "\"arenas\":"), rss, p->tty ? "" : "\n");
}

/* SIGCHLD is blocked (see run), so the child's end wakes sigtimedwait at
 * once: the run ends when CMD does, not at the next poll. */
static int wait_for(pid_t child, const struct run_options *opt, const char *samples_path,
                    struct rusage *usage) {
  struct progress progress = {.tty = isatty(STDERR_FILENO), .started = now_seconds()};
  progress.last_shown = progress.started;
  sigset_t child_ended;
  sigemptyset(&child_ended);
  sigaddset(&child_ended, SIGCHLD);
  int status;
  for (;;) {
    pid_t done = wait4(child, &status, WNOHANG, usage);
    if (done == child) break;
    if (done < 0 && errno != EINTR) return -1;
    struct timespec pause = {0, 250 * 1000000};
    sigtimedwait(&child_ended, NULL, &pause);
    if (opt->map) progress_show(&progress, samples_path);
  }
  if (progress.tty && progress.samples) fputs("\r\033[K", stderr);
  return status;
}

static int exit_code(int status, const char *command) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "poolalloc: %s ended by signal %d (%s)\n", command, WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    return 128 + WTERMSIG(status);
  }
  return 1;
}

static void print_stats(const char *dir, pid_t child) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/stats-%d.txt", dir, (int)child);
  char *text = read_file(path);
  if (text == NULL) {
    fprintf(stderr, "poolalloc: no statistics: the process did not exit normally\n");
    return;
  }
  fputs(text, stderr);
  free(text);
}

/* "sampling used 12 ms of CPU time, 0.9% of the program's 1310 ms": the
 * sampler's and the exit report's CPU time, from the snapshot file, against
 * the child's (rusage), which includes them. */
static void report_cost(const char *snapshot, const struct rusage *usage) {
  const char *sampler = strstr(snapshot, "\"sampler_cpu_us\":");
  const char *report = strstr(snapshot, "\"exit_report_cpu_us\":");
  if (sampler == NULL || report == NULL) return;
  double cost_ms = (strtod(sampler + 17, NULL) + strtod(report + 21, NULL)) / 1000.0;
  double total_ms = (double)(usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) * 1000.0 +
                    (double)(usage->ru_utime.tv_usec + usage->ru_stime.tv_usec) / 1000.0;
  if (total_ms <= 0) return;
  fprintf(stderr, "poolalloc: sampling and the exit snapshot used %.1f ms of CPU time, %.1f%% "
                  "of the program's %.0f ms\n", cost_ms, 100.0 * cost_ms / total_ms, total_ms);
}

static void report_map(const struct run_options *opt, const char *dir, pid_t child, int status,
                       const char *command, const struct rusage *usage) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/snapshot-%d.json", dir, (int)child);
  char *snapshot = read_file(path);
  snprintf(path, sizeof path, "%s/samples-%d.jsonl", dir, (int)child);
  char *samples = read_file(path);
  struct map_data data = {command, status, opt->sample_ms, snapshot, samples};
  size_t nsamples;
  if (write_map(opt->map, &data, &nsamples) == 0)
    fprintf(stderr, "poolalloc: heap map written to %s (%zu samples%s)\n", opt->map, nsamples,
            snapshot ? "" : "; no snapshot: the process did not reach exit(): killed, or it called _exit");
  if (snapshot) report_cost(snapshot, usage);
  free(snapshot);
  free(samples);
}

/* The signal dispositions and mask to give CMD: this program's own, from
 * before it ignored ^C and blocked SIGCHLD. */
struct saved_signals {
  struct sigaction interrupt, quit;
  sigset_t mask;
};

static pid_t start(char **command, const struct saved_signals *saved) {
  pid_t child = fork();
  if (child == 0) {
    sigaction(SIGINT, &saved->interrupt, NULL);
    sigaction(SIGQUIT, &saved->quit, NULL);
    sigprocmask(SIG_SETMASK, &saved->mask, NULL);
    execvp(command[0], command);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "poolalloc: cannot run %s: %s\n", command[0], strerror(errno));
    _exit(code);
  }
  return child;
}

static int run(char **argv) {
  struct run_options opt = {0};
  parse_run(argv, &opt);
  char library_buf[PATH_MAX];
  const char *library = find_library(opt.library, library_buf, sizeof library_buf);
  if (library == NULL || access(library, R_OK) != 0) {
    fprintf(stderr, "poolalloc: cannot find the override library %s; give it with --library "
                    "or POOLALLOC_LIBRARY\n", library ? library : "libpoolalloc-override.so");
    return EXIT_USAGE;
  }
  const char *tmp = getenv("TMPDIR");
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/poolalloc-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  char *made = mkdtemp(dir);
  if (made == NULL) {
    fprintf(stderr, "poolalloc: cannot make a temporary directory: %s\n", strerror(errno));
    return 1;
  }
  char *command = command_line(opt.command);
  prepare_environment(&opt, library, made);
  /* as system() does: ^C and ^\ go to CMD; this program stays to report */
  struct saved_signals saved;
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  sigaction(SIGINT, &ignore, &saved.interrupt);
  sigaction(SIGQUIT, &ignore, &saved.quit);
  sigset_t child_ended;
  sigemptyset(&child_ended);
  sigaddset(&child_ended, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child_ended, &saved.mask);
  pid_t child = start(opt.command, &saved);
  int code = 1;
  if (child > 0) {
    char samples_path[PATH_MAX];
    snprintf(samples_path, sizeof samples_path, "%s/samples-%d.jsonl", made, (int)child);
    struct rusage usage = {0};
    int status = wait_for(child, &opt, samples_path, &usage);
    code = status < 0 ? 1 : exit_code(status, command);
    if (opt.stats) print_stats(made, child);
    if (opt.map) report_map(&opt, made, child, code, command, &usage);
  } else {
    fprintf(stderr, "poolalloc: fork: %s\n", strerror(errno));
  }
  sigaction(SIGINT, &saved.interrupt, NULL);
  sigaction(SIGQUIT, &saved.quit, NULL);
  sigprocmask(SIG_SETMASK, &saved.mask, NULL);
  remove_directory(made);
  free(command);
  return code;
}

/* ---- map ----------------------------------------------------------------- */

static int map(char **argv) {
  const char *snapshot_path = NULL, *samples_path = NULL, *out = NULL;
  for (int i = 0; argv[i]; i++) {
    if (strcmp(argv[i], "-o") == 0)
      out = option_value(argv, &i, "-o");
    else if (strcmp(argv[i], "--samples") == 0)
      samples_path = option_value(argv, &i, "--samples");
    else if (argv[i][0] == '-')
      usage_error("unknown option '%s'", argv[i]);
    else if (snapshot_path == NULL)
      snapshot_path = argv[i];
    else
      usage_error("map takes one snapshot, not also '%s'", argv[i]);
  }
  if (snapshot_path == NULL) usage_error("map needs a snapshot file%s", "");
  if (out == NULL) usage_error("map needs -o FILE.html%s", "");
  char *snapshot = read_file(snapshot_path);
  if (snapshot == NULL) {
    fprintf(stderr, "poolalloc: cannot read %s: %s\n", snapshot_path, strerror(errno));
    return 1;
  }
  char *samples = samples_path ? read_file(samples_path) : NULL;
  if (samples_path && samples == NULL) {
    fprintf(stderr, "poolalloc: cannot read %s: %s\n", samples_path, strerror(errno));
    free(snapshot);
    return 1;
  }
  struct map_data data = {NULL, -1, 0, snapshot, samples};
  size_t nsamples;
  int result = write_map(out, &data, &nsamples);
  free(snapshot);
  free(samples);
  return result == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) usage_error("no command given%s", "");
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("poolalloc %s\n", POOLALLOC_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "run") == 0) return run(argv + 2);
  if (strcmp(argv[1], "map") == 0) return map(argv + 2);
  usage_error("unknown command '%s' (run or map)", argv[1]);
  return EXIT_USAGE;
}
