#!/usr/bin/env bash
# Times `aidiag check` (which uses every core) against `cppcheck --enable=warning`, on one core
# and on every core, on the same 100-file directory of
# kernel-style C (generated from the rule fixtures), in the same run, and prints the ratio.
#
# Usage: scripts/bench-check.sh [FILES] [LINES_PER_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100}
lines=${2:-400}

if ! command -v cppcheck >/dev/null || ! command -v hyperfine >/dev/null; then
    apt-get update -qq && apt-get install -y -qq cppcheck hyperfine >/dev/null
fi

cargo build --release --quiet --bin aidiag --example gen_corpus
corpus=target/bench-corpus
rm -rf "$corpus"
target/release/examples/gen_corpus "$corpus" "$files" "$lines"
echo "corpus: $(ls "$corpus" | wc -l) files, $(cat "$corpus"/*.c | wc -l) lines"
echo "cppcheck: $(cppcheck --version)"

# cppcheck exits 0 even with findings; aidiag exits 1 when it finds something, which is expected.
hyperfine --warmup 1 --runs 5 --export-json target/bench-check.json \
    --command-name aidiag "target/release/aidiag check --format json $corpus > /dev/null || [ \$? -eq 1 ]" \
    --command-name cppcheck "cppcheck --enable=warning --quiet -j 1 $corpus 2> /dev/null" \
    --command-name "cppcheck -j $(nproc)" "cppcheck --enable=warning --quiet -j $(nproc) $corpus 2> /dev/null"

python3 - <<'PY'
import json
runs = {r["command"]: r for r in json.load(open("target/bench-check.json"))["results"]}
a = runs["aidiag"]["median"]
for name, r in runs.items():
    if name != "aidiag":
        print(f"median: aidiag {a*1e3:.0f} ms, {name} {r['median']*1e3:.0f} ms; aidiag/({name}) = {a/r['median']:.3f}")
PY
