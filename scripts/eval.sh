#!/usr/bin/env bash
# Runs two peer tools, cppcheck and clang's static analyzer, over every labeled case NAME.c
# (with its NAME.json) in a corpus directory, and writes what they report as findings JSON
# ([{"file": "NAME.c", "line": 12, "message": "..."}], file = basename, line 1-based):
#   $OUT_DIR/cppcheck.json  cppcheck --enable=warning; severities error and warning only
#   $OUT_DIR/clang.json     clang --analyze (text output), malloc modeling Optimistic=true so
#                           the ownership attributes on kmalloc/kfree in the stub header count;
#                           every analyzer warning counts (compiler -W warnings do not)
# Then it scores aidiag itself (rules with and without the model) and each peer's file with
# `aidiag eval CORPUS [--external FILE --name ENGINE]`: one scorer for every engine.
#
# usage: scripts/eval.sh CORPUS_DIR [INCLUDE_DIR]
#   CORPUS_DIR   fixtures/eval/kernel, ../shared/corpus/juliet, ...
#   INCLUDE_DIR  -I directory; default CORPUS_DIR/support if present, else CORPUS_DIR/../include
# env: OUT_DIR (default: a new temp dir, printed), AIDIAG (default target/release/aidiag),
#      CPPCHECK_EXTRA / CLANG_EXTRA: extra arguments (split on spaces), e.g.
#      CPPCHECK_EXTRA=--library=scripts/eval/cppcheck-kernel.cfg (kernel allocator knowledge) or
#      CLANG_EXTRA='-Xclang -analyzer-disable-checker -Xclang deadcode' (drop dead-store noise)
# Installs the Debian packages cppcheck and clang with apt-get when they are missing.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || ! -d $1 ]]; then
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
corpus=$(cd "$1" && pwd)
if [[ $# -eq 2 ]]; then
	include=$(cd "$2" && pwd)
elif [[ -d $corpus/support ]]; then
	include=$corpus/support
elif [[ -d $corpus/../include ]]; then
	include=$(cd "$corpus/../include" && pwd)
else
	include=
fi
out_dir=${OUT_DIR:-$(mktemp -d -t eval-peers.XXXXXX)}
mkdir -p "$out_dir"
aidiag=${AIDIAG:-target/release/aidiag}

need() { # need COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "installing $2 ..." >&2
	local sudo=
	[[ $(id -u) -ne 0 ]] && sudo=sudo
	$sudo apt-get install -y "$2" >/dev/null || {
		$sudo apt-get update >/dev/null && $sudo apt-get install -y "$2" >/dev/null
	}
}
need cppcheck cppcheck
need clang clang
need python3 python3

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

cases=()
for c in "$corpus"/*.c; do
	[[ -f ${c%.c}.json ]] && cases+=("$c")
done
if [[ ${#cases[@]} -eq 0 ]]; then
	echo "no labeled cases (NAME.c + NAME.json) in $corpus" >&2
	exit 1
fi
inc_args=()
[[ -n $include ]] && inc_args=(-I "$include")
read -r -a cppcheck_extra <<<"${CPPCHECK_EXTRA:-}"
read -r -a clang_extra <<<"${CLANG_EXTRA:-}"

echo "corpus:  $corpus (${#cases[@]} cases)"
echo "include: ${include:-none}"
echo "out:     $out_dir"
echo "tools:   $(cppcheck --version); $(clang --version | head -n 1)"
[[ -n ${CPPCHECK_EXTRA:-} ]] && echo "cppcheck extra: $CPPCHECK_EXTRA"
[[ -n ${CLANG_EXTRA:-} ]] && echo "clang extra: $CLANG_EXTRA"

# cppcheck: one run over all cases, one thread.
t0=$(now)
cppcheck --enable=warning --inline-suppr --quiet \
	--template='{file}:{line}:{severity}:{id}:{message}' \
	"${cppcheck_extra[@]}" "${inc_args[@]}" "${cases[@]}" 2>"$out_dir/cppcheck.raw" >/dev/null || true
t1=$(now)
cppcheck_s=$(elapsed "$t0" "$t1")
python3 "$here/eval/peer_to_json.py" cppcheck "$out_dir/cppcheck.raw" "$out_dir/cppcheck.json"

# clang --analyze: one process per case (it takes one translation unit at a time).
raw=$out_dir/clang.raw
rm -rf "$raw"
mkdir -p "$raw"
failed=0
t0=$(now)
for c in "${cases[@]}"; do
	if ! clang --analyze -Xclang -analyzer-output=text \
		-Xclang -analyzer-config -Xclang unix.DynamicMemoryModeling:Optimistic=true \
		"${clang_extra[@]}" "${inc_args[@]}" "$c" -o /dev/null 2>"$raw/$(basename "$c").txt"; then
		failed=$((failed + 1))
		echo "clang failed on $(basename "$c"):" >&2
		grep -m 3 ': error:' "$raw/$(basename "$c").txt" >&2 || true
	fi
done
t1=$(now)
clang_s=$(elapsed "$t0" "$t1")
python3 "$here/eval/peer_to_json.py" clang "$raw" "$out_dir/clang.json"
[[ $failed -gt 0 ]] && echo "clang: $failed cases did not compile" >&2

echo
echo "time: cppcheck ${cppcheck_s}s, clang --analyze ${clang_s}s (${#cases[@]} cases, one core)"
if [[ ! -x $aidiag ]]; then
	echo "$aidiag not found: build it (cargo build --release) or set AIDIAG" >&2
	exit 1
fi
t0=$(now)
"$aidiag" eval "$corpus" >"$out_dir/aidiag.txt"
t1=$(now)
echo "time: aidiag eval $(elapsed "$t0" "$t1")s"
"$aidiag" eval "$corpus" --no-model >"$out_dir/aidiag-no-model.txt"
echo
cat "$out_dir/aidiag.txt"
echo "--- ablation: --no-model"
tail -n 2 "$out_dir/aidiag-no-model.txt"
for engine in cppcheck clang; do
	echo
	"$aidiag" eval "$corpus" --external "$out_dir/$engine.json" --name "$engine"
done
