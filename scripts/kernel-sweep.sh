#!/usr/bin/env bash
# Runs `aidiag check --no-model` over subtrees of a released kernel (Debian's linux-source-6.12)
# and prints what a maintainer would see: warnings and errors per 100,000 lines of .c per rule,
# distinct root causes, the time and throughput, and a random sample (fixed seed) of root causes
# to read and triage (docs/kernel-sweep.md keeps the triage).
#
# Usage: scripts/kernel-sweep.sh [--sample N] [--seed S] [--json FILE] [--keep REPORT] [--reference] DIR...
#   DIR is a path inside the kernel tree (drivers/usb, fs, ...); --json writes the figures and the
#   sample, --keep the whole `aidiag check --format json` report; --reference also times parsing
#   alone (examples/parse_only.rs: the same files read and parsed on every core, no rule run), the
#   floor under the check's time on this machine, and prints the check's throughput as a share of it.
# Environment: KERNEL_SRC, an unpacked tree to use instead (default: unpacked from
# /usr/src/linux-source-6.12.tar.xz into ~/.cache/aidiag/linux-source-6.12 on first use);
# AIDIAG, the binary (default: target/release/aidiag, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

sample=40
seed=1
json_out=""
keep=""
reference=""
dirs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sample) sample=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --json) json_out=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --reference) reference=1; shift ;;
        -*) echo "kernel-sweep: unknown option $1" >&2; exit 2 ;;
        *) dirs+=("$1"); shift ;;
    esac
done
if [ ${#dirs[@]} -eq 0 ]; then
    echo "usage: scripts/kernel-sweep.sh [--sample N] [--seed S] [--json FILE] [--keep REPORT] [--reference] DIR..." >&2
    exit 2
fi

tarball=/usr/src/linux-source-6.12.tar.xz
src=${KERNEL_SRC:-$HOME/.cache/aidiag/linux-source-6.12}
for dir in "${dirs[@]}"; do
    if [ ! -d "$src/$dir" ]; then
        if [ ! -f "$tarball" ]; then
            echo "kernel-sweep: installing linux-source-6.12 (Debian package)" >&2
            apt-get update -qq && apt-get install -y -qq linux-source-6.12 >/dev/null
        fi
        echo "kernel-sweep: unpacking $dir into $src" >&2
        mkdir -p "$(dirname "$src")"
        tar -xJf "$tarball" -C "$(dirname "$src")" "linux-source-6.12/$dir"
    fi
done

binary=${AIDIAG:-target/release/aidiag}
if [ -z "${AIDIAG:-}" ]; then
    cargo build --release --quiet --bin aidiag
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
paths=()
for dir in "${dirs[@]}"; do paths+=("$src/$dir"); done
start=$(date +%s.%N)
# Exit status 1 means "found something"; 2 means a file could not be read (reported on stderr).
"$binary" check --no-model --format json "${paths[@]}" > "$report" || [ $? -le 2 ]
end=$(date +%s.%N)
[ -z "$keep" ] || cp "$report" "$keep"

python3 scripts/kernel_sweep_report.py --report "$report" --root "$src" --start "$start" --end "$end" \
    --sample "$sample" --seed "$seed" ${json_out:+--json "$json_out"} "${dirs[@]}"

if [ -n "$reference" ]; then
    cargo build --release --quiet --example parse_only
    ref_start=$(date +%s.%N)
    target/release/examples/parse_only "${paths[@]}" > /dev/null
    ref_end=$(date +%s.%N)
    python3 - "$start" "$end" "$ref_start" "$ref_end" <<'PY'
import sys
start, end, ref_start, ref_end = map(float, sys.argv[1:])
check, parse = end - start, ref_end - ref_start
print(f"reference, parsing alone (tree-sitter-c, same files, same cores): {parse:.1f} s; "
      f"the check takes {check / parse:.2f}x as long ({parse / check:.0%} of parsing's throughput)")
PY
fi
