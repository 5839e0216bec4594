#!/usr/bin/env bash
# sqlite3 on poolalloc: builds a 200,000-row table on disk, indexes, groups,
# joins, updates and deletes; results checked against closed forms and
# against the same script without poolalloc.
. "$(dirname "$0")/common.sh"
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
cat >"$work/script.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, x % 100, printf('name-%08d-%s', x, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)), x * 0.5 FROM c;
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(id) FROM t;
CREATE TABLE g AS SELECT grp, count(*) AS n FROM t GROUP BY grp;
SELECT sum(g.n) FROM t JOIN g USING (grp);
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
SELECT count(*) FROM t WHERE name GLOB 'NAME-*';
DELETE FROM t WHERE id % 7 = 0;
SELECT count(*), sum(id) FROM t;
SELECT grp, count(*) FROM t WHERE grp < 2 GROUP BY grp ORDER BY grp;
SQL
run_on_poolalloc sqlite3 "$work/on.db" <"$work/script.sql"
sqlite3 "$work/off.db" <"$work/script.sql" >"$work/off.out"
expected=$(python3 - <<'PY'
n = 200000
ids = range(1, n + 1)
kept = [i for i in ids if i % 7]
print(f"{n}|{n * (n + 1) // 2}")
print(n * (n // 100))            # every row joins its group of 2000
print(n // 3)
print(f"{len(kept)}|{sum(kept)}")
for grp in (0, 1):
    print(f"{grp}|{sum(1 for i in kept if i % 100 == grp)}")
PY
)
if [ "$(cat "$work/on.out")" != "$expected" ]; then
  echo "FAIL: sqlite3 on poolalloc printed:"; cat "$work/on.out"; echo "expected:"; echo "$expected"; exit 1
fi
cmp -s "$work/on.out" "$work/off.out" || { echo "FAIL: output differs from sqlite3 without poolalloc"; exit 1; }
echo "sqlite3: results match the closed forms and the run without poolalloc"
expect_served 100000
