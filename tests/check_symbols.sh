#!/usr/bin/env bash
# Every global symbol poolalloc's libraries define must be public API (a
# pa_ name that include/poolalloc.h declares), carry the internal prefix
# _pa_, be a C library entry point or C++ operator of the override, or be a
# linker-made bound of poolalloc's entry-point section.  A program that
# defines a function named like one of poolalloc's internals then still
# links against the static library.  The override's libraries must not
# call another allocator: no C library allocation entry point (glibc's
# __libc_malloc family) and no symbol lookup that could find one.
#
#   check_symbols.sh HEADER LIBRARY...
set -euo pipefail
header=$1
shift
public=$(grep -oE '\bpa_[a-z0-9_]+\b' "$header" | sort -u)
override='malloc|free|calloc|realloc|reallocarray|malloc_usable_size|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|malloc_trim|mallopt|mallinfo|mallinfo2|malloc_info|malloc_stats'
cxx='_Zn[wa]m.*|_Zd[la]Pv.*'
linker='__start_poolalloc_entry|__stop_poolalloc_entry'
# compiler-made: AddressSanitizer's one-definition-rule indicators for
# those globals, and the exception personality reference of the override's
# C++ operators (built with -fexceptions)
asan='__odr_asan\._pa_[a-z0-9_]+|DW\.ref\.__gcc_personality_v0'
status=0
# report LIB FOUND PROBLEM FINE: FOUND (names, one a line) is a failure
report() {
  if [ -n "$2" ]; then
    echo "FAIL: $(basename "$1") $3:"
    echo "$2" | sed 's/^/  /'
    status=1
  else
    echo "$(basename "$1"): $4"
  fi
}
foreign='(__libc_[a-z_]*(alloc|free)[a-z_]*|malloc_usable_size|dlsym|dlvsym|dlopen)(@.*)?'
for lib in "$@"; do
  case $lib in
    *.so*) symbols=$(nm -D --defined-only "$lib" | awk 'NF == 3 && $2 != "A" {print $3}') ;;
    *) symbols=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}') ;;
  esac
  bad=$(echo "$symbols" | sort -u | grep -vxE "_pa_[a-z0-9_]+|$override|$cxx|$linker|$asan" |
        grep -vxF "$public" || true)
  count=$(echo "$symbols" | sort -u | wc -l)
  report "$lib" "$bad" "defines symbols outside the public API and the _pa_ prefix" \
         "$count global symbols, all public API, _pa_ or override entry points"
  case $lib in *override*) ;; *) continue ;; esac
  calls=$(nm --undefined-only "$lib" 2>/dev/null | awk '{print $NF}' | grep -xE "$foreign" | sort -u || true)
  report "$lib" "$calls" "calls another allocator" "calls no other allocator"
done
exit $status
