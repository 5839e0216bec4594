/*
 * Address -> arena, as CPython 3.10+ does it (bpo-37448), simplified by
 * poolalloc's arenas being aligned to their size: one leaf entry per arena.
 *
 * The key is address >> ARENA_BITS over 48-bit addresses; the root is a
 * static array (untouched pages of it never become resident), leaves are
 * mapped on first use and kept for the life of the process (one 256 KiB
 * leaf covers 8 GiB of address space with the default arena size).
 * Writers hold the arena lock; readers take no lock.
 *
 * The first leaf is static too, and the lookup compares the root index
 * with the first leaf's before it reads the root: for a heap within that
 * leaf's 8 GiB, a free loads the leaf entry straight away, one dependent
 * load less between the pointer and its pool record (a thread churning
 * its own blocks of 8..512 bytes: 0.59 -> 0.58 s for 100 million, 7 runs
 * pinned to one CPU; mimalloc 0.56).
 */
#include "internal.h"

_Atomic(pa_radix_leaf *) _pa_radix_root[PA_RADIX_ROOT_LEN];
/* Its root index is published after the leaf is in the root, and sits on
 * a line of its own: every free reads it. */
pa_radix_leaf _pa_radix_first_leaf;
_Alignas(64) _Atomic uintptr_t _pa_radix_first_root = PA_RADIX_NO_ROOT;

static struct {
  size_t leaves; /* guarded by the arena lock */
} radix;

static _Atomic(pa_arena *) *radix_slot(uintptr_t base, bool create) {
  uintptr_t key = base >> PA_ARENA_BITS;
  uintptr_t root_index = key >> PA_RADIX_LEAF_BITS;
  if (root_index >= PA_RADIX_ROOT_LEN) return NULL;
  pa_radix_leaf *leaf = atomic_load_explicit(&_pa_radix_root[root_index], memory_order_acquire);
  if (leaf == NULL) {
    if (!create) return NULL;
    bool first = radix.leaves == 0;
    if (first) leaf = &_pa_radix_first_leaf;
    else if ((leaf = _pa_os_map(sizeof(pa_radix_leaf))) == NULL) return NULL;
    radix.leaves++;
    atomic_store_explicit(&_pa_radix_root[root_index], leaf, memory_order_release);
    if (first) atomic_store_explicit(&_pa_radix_first_root, root_index, memory_order_release);
  }
  return &(*leaf)[key & (PA_RADIX_LEAF_LEN - 1)];
}

bool _pa_radix_register(uintptr_t base, pa_arena *arena) {
  _Atomic(pa_arena *) *slot = radix_slot(base, true);
  if (slot == NULL) return false;
  atomic_store_explicit(slot, arena, memory_order_release);
  return true;
}

void _pa_radix_unregister(uintptr_t base) {
  _Atomic(pa_arena *) *slot = radix_slot(base, false);
  if (slot) atomic_store_explicit(slot, NULL, memory_order_release);
}

size_t _pa_radix_leaves(void) {
  return radix.leaves;
}
