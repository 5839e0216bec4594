// The C++ operators through the override: every form of new and delete,
// alignment, nothrow failure returning nullptr, throwing failure raising
// std::bad_alloc, and the standard containers running on poolalloc.
#include <cstdint>
#include <cstdio>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "poolalloc.h"

extern "C" int pa_stats_get(struct pa_stats *) __attribute__((weak));

static int passed, failed;
#define CHECK(c) ((c) ? passed++ : (failed++, std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c)))

struct alignas(256) Wide {
  char bytes[300];
};

// new and new[] for 1 byte to 1 MiB: 16-byte aligned from 16 bytes up
// (__STDCPP_DEFAULT_NEW_ALIGNMENT__ is 16 on x86-64).
static void check_new_alignment() {
  static char *kept[2][1100];
  size_t count = 0, misaligned = 0;
  for (size_t n = 1; n <= (size_t(1) << 20) && count < 1100; n = n < 1024 ? n + 1 : n + n / 8) {
    kept[0][count] = new char[n];
    kept[1][count] = static_cast<char *>(::operator new(n));
    for (char *p : {kept[0][count], kept[1][count]})
      if (n >= 16 && reinterpret_cast<std::uintptr_t>(p) % 16 != 0) misaligned++;
    count++;
  }
  while (count-- > 0) {
    delete[] kept[0][count];
    ::operator delete(kept[1][count]);
  }
  CHECK(misaligned == 0);
}

int main() {
  CHECK(pa_stats_get != nullptr);
  check_new_alignment();
  struct pa_stats before, after;
  if (pa_stats_get) pa_stats_get(&before);

  int *one = new int(7);
  int *many = new int[100]();
  CHECK(*one == 7 && many[99] == 0);
  delete one;
  delete[] many;

  Wide *w = new Wide;
  CHECK(reinterpret_cast<std::uintptr_t>(w) % 256 == 0);
  delete w;
  Wide *ws = new Wide[3];
  CHECK(reinterpret_cast<std::uintptr_t>(ws) % 256 == 0);
  delete[] ws;

  int *nothrow = new (std::nothrow) int[4];
  CHECK(nothrow != nullptr);
  delete[] nothrow;
  std::size_t huge = SIZE_MAX / 4;
  CHECK(new (std::nothrow) char[huge] == nullptr);
  bool threw = false;
  try {
    char *never = new char[huge];
    delete[] never;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);

  std::map<std::string, std::vector<int>> index;
  for (int i = 0; i < 20000; i++) index["key" + std::to_string(i % 997)].push_back(i);
  std::size_t total = 0;
  for (auto &entry : index) total += entry.second.size();
  CHECK(index.size() == 997 && total == 20000);

  if (pa_stats_get) {
    pa_stats_get(&after);
    CHECK(after.small_allocations >= before.small_allocations + 997); // a map node per key
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
