#!/usr/bin/env bash
# perl on poolalloc: hashes, arrays of hashes, sorting, regular expressions
# and string building over 1,000,000 generated words; results checked against
# closed forms and against the same script without poolalloc.
. "$(dirname "$0")/common.sh"
cat >"$work/script.pl" <<'PL'
use strict; use warnings;
my (%count, @records);
for my $i (1 .. 1000000) {
  my $word = "w" . ($i % 1000);
  $count{$word}++;
  push @records, { id => $i, word => $word, tags => [ $i % 3, $i % 5 ] } if $i % 10 == 0;
}
my @sorted = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
my $text = join " ", map { "$_:$count{$_}" } @sorted;
my $matches = () = $text =~ /\bw9\d\d:/g;
(my $upper = $text) =~ s/w(\d+)/W$1/g;
my $tagged = grep { $_->{tags}[0] == 0 && $_->{tags}[1] == 0 } @records;
print scalar(keys %count), " ", $count{w7}, " ", $matches, " ", length($upper), " ", scalar(@records), " ", $tagged, "\n";
PL
run_on_poolalloc perl "$work/script.pl"
perl "$work/script.pl" >"$work/off.out"
expected=$(python3 - <<'PY'
words = {f"w{i}": 1000 for i in range(1000)}
text = " ".join(f"{w}:{c}" for w, c in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])))
records = [i for i in range(1, 1000001) if i % 10 == 0]
print(len(words), 1000, 100, len(text), len(records), sum(1 for i in records if i % 3 == 0 and i % 5 == 0))
PY
)
if [ "$(cat "$work/on.out")" != "$expected" ]; then
  echo "FAIL: perl on poolalloc printed:"; cat "$work/on.out"; echo "expected:"; echo "$expected"; exit 1
fi
cmp -s "$work/on.out" "$work/off.out" || { echo "FAIL: output differs from perl without poolalloc"; exit 1; }
echo "perl: results match the closed forms and the run without poolalloc"
expect_served 100000
