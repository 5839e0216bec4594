/* Runs the fuzz target (fuzz_ops.c) over files and directories of inputs
 * without libFuzzer, so every build replays the seed corpus. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  static uint8_t data[1 << 20];
  size_t size = fread(data, 1, sizeof data, f);
  fclose(f);
  LLVMFuzzerTestOneInput(data, size);
  return 1;
}

int main(int argc, char **argv) {
  int inputs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: not found\n", argv[i]);
      return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
      inputs += replay_file(argv[i]);
      continue;
    }
    DIR *dir = opendir(argv[i]);
    for (struct dirent *entry; dir && (entry = readdir(dir));) {
      if (entry->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], entry->d_name);
      inputs += replay_file(path);
    }
    if (dir) closedir(dir);
  }
  printf("replayed %d inputs\n", inputs);
  return inputs > 0 ? 0 : 1;
}
