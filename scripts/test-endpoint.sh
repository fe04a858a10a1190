#!/usr/bin/env bash
# aidiag against a real OpenAI-compatible server on loopback: llama-cpp-python's server (installed
# from PyPI into a virtual environment; building it compiles llama.cpp, several minutes on two
# cores) serving Qwen2.5-Coder-0.5B-Instruct (scripts/fetch-model.sh qwen2.5-coder-0.5b).
#
#   scripts/test-endpoint.sh [--keep]
#
# Checks, on the rules' bad examples of the judged rules:
#   1. the server's verdicts equal the in-process model's on the same GGUF file: the same answer,
#      probability within 0.05;
#   2. 1, 4 and 16 verdicts in flight give the same findings, every verdict once; verdicts per
#      second at each;
#   3. the server killed mid-run: every rule finding still printed, one warning.
# Not part of CI (no network there for the build, and it takes minutes); results go in
# docs/perf.md ("A model on a server").
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${AIDIAG_ENDPOINT_VENV:-target/endpoint-venv}
work=$(mktemp -d)
server_pid=
keep=${1:-}
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    if [ "$keep" = --keep ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    echo "installing llama-cpp-python[server] into $venv (compiles llama.cpp) ..."
    python3 -m venv "$venv"
    # Built for AVX2, not for this CPU: the build with GGML_NATIVE (AVX-512 here) crashed with a
    # general protection fault in libggml-cpu on every prompt longer than one token.
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" \
        "$venv/bin/pip" install --quiet 'llama-cpp-python[server]'
fi
scripts/fetch-model.sh qwen2.5-coder-0.5b >/dev/null
model="${XDG_CACHE_HOME:-$HOME/.cache}/aidiag/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
cargo build --release --quiet
aidiag=target/release/aidiag

mkdir -p "$work/corpus"
for rule in lock-imbalance leak-on-error use-after-free double-free; do
    cp "fixtures/rules/$rule/bad.c" "$work/corpus/$rule.c"
done

start_server() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias qwen2.5-coder-0.5b \
        --host 127.0.0.1 --port "$port" --n_ctx 4096 --n_threads "$(nproc)" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "error: the server did not start; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
}

run() { # name, extra arguments...
    local name=$1
    shift
    local started ended
    started=$(date +%s.%N)
    "$aidiag" check --format json --no-cache --verdicts annotate --review off "$@" "$work/corpus" \
        >"$work/$name.json" 2>"$work/$name.err" || true
    ended=$(date +%s.%N)
    python3 -c "print(f'{$ended - $started:.2f}')" >"$work/$name.time"
}

echo "in-process (kalosm) on $model ..."
run local --model "$model"
start_server
url="http://127.0.0.1:$port/v1"
for jobs in 1 4 16; do
    echo "server, $jobs in flight ..."
    run "jobs$jobs" --endpoint "$url" --jobs "$jobs"
done

echo "server killed after 3 s ..."
"$aidiag" check --format json --no-model "$work/corpus" >"$work/rules.json" 2>/dev/null || true
(sleep 3 && kill "$server_pid") &
run killed --endpoint "$url" --jobs 1
wait

python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
def findings(name):
    with open(f"{work}/{name}.json") as f:
        report = json.load(f)
    return [(x["rule"], f["path"].rsplit("/", 1)[-1], x["range"]["start"]["line"], x["message"])
            for f in report["files"] for x in f["findings"]]
note = re.compile(r"judged this report (correct|wrong) \(p = ([0-9.]+)\)")
strip = re.compile(r" \(the local model \(.*")
def verdicts(name):
    out = {}
    for rule, path, line, message in findings(name):
        m = note.search(message)
        if m:
            p = float(m.group(2))
            out[(rule, path, line, strip.sub("", message))] = p if m.group(1) == "correct" else 1 - p
    return out
failed = False
local, served = verdicts("local"), verdicts("jobs1")
print(f"in-process verdicts: {len(local)}, server verdicts: {len(served)}")
worst = 0.0
for key, p in local.items():
    q = served.get(key)
    if q is None:
        print(f"  missing from the server run: {key[:3]}"); failed = True; continue
    worst = max(worst, abs(p - q))
    same = (p >= 0.5) == (q >= 0.5)
    print(f"  {key[0]:15} {key[1]:20} line {key[2] + 1:4}: p(yes) in-process {p:.2f}, server {q:.2f}{'' if same else '  DIFFERENT ANSWER'}")
    failed |= not same or abs(p - q) > 0.05
print(f"largest difference in p(yes): {worst:.3f} (must be <= 0.05)")
# The same findings and answers at 4 and 16 in flight; the server's probabilities themselves move
# by a few hundredths between requests (its prompt cache), so they are compared within 0.05.
base = [(r, p, l, strip.sub("", m)) for r, p, l, m in findings("jobs1")]
for jobs in (4, 16):
    other = verdicts(f"jobs{jobs}")
    same = [(r, p, l, strip.sub("", m)) for r, p, l, m in findings(f"jobs{jobs}")] == base
    moved = max((abs(served[k] - other.get(k, -9)) for k in served), default=0.0)
    flipped = sum((served[k] >= 0.5) != (other.get(k, -9) >= 0.5) for k in served)
    print(f"{jobs:2} in flight: same findings as 1: {same}; answers that differ: {flipped}; largest move in p(yes): {moved:.3f}")
    failed |= not same or flipped > 0 or moved > 0.05
for jobs in (1, 4, 16):
    t = float(open(f"{work}/jobs{jobs}.time").read())
    print(f"{jobs:2} in flight: {len(served)} verdicts in {t:.2f} s, {len(served) / t:.2f} verdicts/s (whole run, start included)")
t = float(open(f"{work}/local.time").read())
print(f"in-process: {len(local)} verdicts in {t:.2f} s, {len(local) / t:.2f} verdicts/s (whole run, model load included)")
killed, rules = findings("killed"), findings("rules")
err = open(f"{work}/killed.err").read()
warnings = err.count("warning")
print(f"killed mid-run: {len(killed)} findings (rules alone {len(rules)}), {len(verdicts('killed'))} judged, {warnings} warning(s)")
failed |= len(killed) != len(rules) or warnings != 1
print("FAILED" if failed else "passed")
sys.exit(1 if failed else 0)
PY
