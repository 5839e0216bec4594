#!/usr/bin/env bash
# git on poolalloc, with bash running the script on it too: 20 commits of 50
# files, log, diff, an aggressive gc (threaded delta search and packing), a
# strict fsck and a clone through the pack protocol.  Fixed names and
# dates make the object names the same on every run: they are checked
# against the run without poolalloc, the object counts against closed
# forms.
. "$(dirname "$0")/common.sh"
cat >"$work/script.sh" <<'BASH'
set -euo pipefail
root=$1
mkdir -p "$root"
cd "$root"
export HOME=$root GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=poolalloc GIT_AUTHOR_EMAIL=test@example.com
export GIT_COMMITTER_NAME=poolalloc GIT_COMMITTER_EMAIL=test@example.com
git init -q -b main repo
cd repo
for c in $(seq 1 20); do
  export GIT_AUTHOR_DATE="@$((1700000000 + c)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + c)) +0000"
  for f in $(seq 1 50); do
    { echo "file $f, commit $c"; seq "$f" $((f + 400)); seq "$c" 7 $((c * 300)); } >"f$f.txt"
  done
  git add -A
  git commit -q -m "commit $c"
done
git log --format='%H %s' | wc -l
git diff --shortstat HEAD~10 HEAD
git gc -q --aggressive
git fsck --strict --no-progress
git count-objects -v | grep -E '^(count|in-pack):'
git clone -q --no-local . ../clone
git -C ../clone rev-parse HEAD
git rev-parse HEAD
BASH
run_on_poolalloc bash "$work/script.sh" "$work/on"
bash "$work/script.sh" "$work/off" >"$work/off.out"
# 20 commits, 20 root trees, and 1,000 blobs (each file differs in every
# commit), all packed by gc; the clone's head is the repository's.
expected_counts=$'count: 0\nin-pack: 1040'
if [ "$(grep -cx '20' "$work/on.out")" -ne 1 ] ||
   [ "$(grep -E '^(count|in-pack):' "$work/on.out")" != "$expected_counts" ] ||
   [ "$(tail -n 2 "$work/on.out" | sort -u | wc -l)" -ne 1 ]; then
  echo "FAIL: git on poolalloc printed:"; cat "$work/on.out" "$work/on.err"; exit 1
fi
cmp -s "$work/on.out" "$work/off.out" || {
  echo "FAIL: output differs from git without poolalloc"; diff "$work/on.out" "$work/off.out"; exit 1; }
echo "git: $(tail -n 1 "$work/on.out"), same objects as without poolalloc, packed, fsck clean, cloned"
expect_served 100000
