#!/usr/bin/env bash
# Measures the in-process model (aidiag: kalosm-llama / candle) and llama.cpp (llama-cpp-python)
# on the same GGUF file, with the same prompt, in the same run, and prints one markdown table:
# load time, prompt tokens, time to first token, prefill and decode tokens/s, and aidiag's
# prefill and decode speed divided by each llama.cpp row's.
#
# 1. `cargo bench --bench model` (or the prebuilt binary named by $AIDIAG_MODEL_BENCH) runs
#    aidiag's explanation prompt (~250 tokens) and writes the exact prompt text to a file.
#    aidiag runs a prepared Q8_0 copy of a Q4_1 model (candle has no SIMD kernel for Q4_1).
# 2. scripts/bench_llama_cpp.py runs llama.cpp on the same prompt, on the original model file
#    and on the Q8_0 copy aidiag ran, with as many threads as aidiag used.
#
# Time, on 2 cores with SmolLM2-135M and the defaults: about 20 s for the measurements on an idle
# machine (up to 2 minutes when something else runs), plus building the benchmark when cargo has
# not, plus about 3 minutes the first time to build llama-cpp-python==0.3.16 from source (it is
# installed only when `import llama_cpp` fails). It warns when other processes took CPU meanwhile.
#
# This VM's speed swings by up to 1.5x from one minute to the next, so the engines take turns:
# each round runs aidiag, then llama.cpp on each file, and a ratio is taken within each round;
# the table reports the median over rounds of each figure and of each ratio, and the rounds'
# ratios are listed below it.
#
# Usage: scripts/bench-model.sh [--rounds N] [--runs N] [--tokens N] [--model PATH] [--threads N]
#   --rounds   rounds of (aidiag, llama.cpp) taking turns (default 3)
#   --runs     runs per engine and round, medians reported (default 3)
#   --tokens   tokens to generate per run (default 64)
#   --model    GGUF file (default: aidiag's default model)
#   --threads  llama.cpp threads (default: the threads aidiag reports, every core)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
runs=3
tokens=64
model=
threads=
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --tokens) tokens=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--runs N] [--tokens N] [--model PATH] [--threads N]" >&2; exit 2 ;;
    esac
done

if ! python3 -c "import llama_cpp" 2>/dev/null; then
    echo "installing llama-cpp-python==0.3.16 (builds llama.cpp from source: several minutes)" >&2
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        python3 -m pip install --quiet --no-cache-dir llama-cpp-python==0.3.16
fi

out=$PWD/target/bench-model
mkdir -p "$out"

# CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal), in clock ticks:
# compared with this script's own at the end, it tells whether something else ran meanwhile.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# `times` (this shell's children's CPU time) runs in this shell: in a subshell it counts nothing.
times > "$out/times0"
busy0=$(busy_ticks)
wall0=$(date +%s.%N)
prompt=$out/prompt.txt
args=(--runs "$runs" --tokens "$tokens" --prompt-out "$prompt")
[ -n "$model" ] && args+=(--model "$model")

for round in $(seq 1 "$rounds"); do
echo "round $round of $rounds: aidiag ($runs runs, $tokens tokens)..." >&2
if [ -n "${AIDIAG_MODEL_BENCH:-}" ]; then
    "$AIDIAG_MODEL_BENCH" "${args[@]}" > "$out/aidiag.out"
else
    cargo bench --bench model -- "${args[@]}" > "$out/aidiag.out"
fi
grep '^{' "$out/aidiag.out" | tail -n 1 > "$out/aidiag.$round.json"

# The original file and the weights aidiag actually ran (its prepared Q8_0 copy, or the same
# file when it needed no preparing).
{ read -r original; read -r weights; read -r aidiag_threads; } < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["model"], r["weights"], r["threads"], sep="\n")' "$out/aidiag.$round.json")
threads=${threads:-$aidiag_threads}

echo "round $round of $rounds: llama.cpp on $original ($threads threads)..." >&2
scripts/bench_llama_cpp.py "$original" "$prompt" --threads "$threads" --runs "$runs" --tokens "$tokens" \
    > "$out/llama-original.$round.json"
if [ "$weights" != "$original" ]; then
    echo "round $round of $rounds: llama.cpp on $weights ($threads threads)..." >&2
    scripts/bench_llama_cpp.py "$weights" "$prompt" --threads "$threads" --runs "$runs" --tokens "$tokens" \
        > "$out/llama-weights.$round.json"
else
    cp "$out/llama-original.$round.json" "$out/llama-weights.$round.json"
fi
done

# Other processes' CPU time: the machine's busy time less this script's children's.
times > "$out/times1"
others=$(tail -q -n 1 "$out/times0" "$out/times1" | awk -v busy="$(( $(busy_ticks) - busy0 ))" \
    -v hz="$(getconf CLK_TCK)" -v t0="$wall0" -v t1="$(date +%s.%N)" -v cpus="$(nproc)" '{
        cpu = 0
        for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); cpu += t[1] * 60 + t[2] }
        mine = cpu - mine  # the second line (the end) less the first (the start)
    } END {
        other = busy / hz - mine; if (other < 0) other = 0
        printf "%.1f %.0f", other, 100 * other / ((t1 - t0) * cpus)
    }')

python3 - "$out" "$rounds" "$runs" "$tokens" "$threads" $others <<'PY'
import json, os, statistics, sys
out, rounds, runs, tokens, threads, other_s, other_pct = sys.argv[1:]
rounds = int(rounds)
load = lambda name: [json.load(open(f"{out}/{name}.{i}.json")) for i in range(1, rounds + 1)]
A, LO, LW = load("aidiag"), load("llama-original"), load("llama-weights")
same_file = LO[0]["weights"] == LW[0]["weights"]
keys = ["load_s", "first_token_s", "prefill_tok_s", "decode_tok_s"]

def med(rs):
    """The median over rounds of each figure."""
    r = dict(rs[0])
    for k in keys:
        r[k] = statistics.median(x[k] for x in rs)
    return r

a, lo, lw = med(A), med(LO), med(LW)
rows = [(a, A, "")] + ([(lw, LW, "same weights")] if same_file else [(lw, LW, "same weights"), (lo, LO, "original file")])

def ratios(key, rs):
    return [x[key] / y[key] for x, y in zip(A, rs) if y[key]]

def ratio(key, rs):
    r = ratios(key, rs)
    return f"{statistics.median(r):.2f}" if r else "-"

print(f"\n{rounds} rounds taking turns, medians over rounds of medians of {runs} runs; {tokens} generated "
      f"tokens per run, llama.cpp on {threads} threads; other processes used {other_s} CPU-seconds "
      f"({other_pct}% of the machine) meanwhile\n")
print("| engine | weights | load s | prompt tokens | first token s | prefill tok/s | decode tok/s "
      "| aidiag/this prefill | aidiag/this decode |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
for r, rs, what in rows:
    mine = r is a
    label = r["engine"] + (f" ({what})" if what else "")
    print(f"| {label} | {os.path.basename(r['weights'])} | {r['load_s']:.3f} | {r['prompt_tokens']} "
          f"| {r['first_token_s']:.3f} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.1f} "
          f"| {'-' if mine else ratio('prefill_tok_s', rs)} | {'-' if mine else ratio('decode_tok_s', rs)} |")
print()
for r, rs, what in rows[1:]:
    print(f"each round, aidiag/llama.cpp ({what}): prefill "
          + ", ".join(f"{x:.2f}" for x in ratios("prefill_tok_s", rs))
          + "; decode " + ", ".join(f"{x:.2f}" for x in ratios("decode_tok_s", rs)))
rows = [(r, what) for r, _, what in rows]

for r, _ in rows[1:]:
    if r["prompt_tokens"] != a["prompt_tokens"]:
        print(f"\nnote: the prompt is {a['prompt_tokens']} tokens for aidiag and {r['prompt_tokens']} "
              f"for llama.cpp on {os.path.basename(r['weights'])}")
    if any(g < int(tokens) for g in r.get("generated_tokens", [])):
        print(f"\nnote: llama.cpp on {os.path.basename(r['weights'])} stopped at an end token: "
              f"generated {r['generated_tokens']} tokens per run")
if int(other_pct) >= 5:
    print(f"\nwarning: other processes used {other_s} CPU-seconds ({other_pct}% of the machine) during "
          "the measurements: the numbers are not reliable (llama.cpp's threads wait for each other "
          "spinning, so it slows down far more than its share when a core is taken)")
PY
