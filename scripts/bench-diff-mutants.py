#!/usr/bin/env python3
"""`aidiag check --diff` on all the mutants of a kernel-mutants benchmark at once (the patch-review
issue's kernel target): a git repository holds the original files; every mutant's edit is applied
to the working tree (edits of one file merged, bottom up); `aidiag check --diff HEAD` must report
the mutants the rules find and nothing else. A finding counts for a mutant when it has the mutant's
rule and lies in its function (a deleted kfree in an unwinding ladder leaks at every goto that
reaches it, so one mutant can give several findings).

usage: scripts/bench-diff-mutants.py BENCH AIDIAG
"""
import json, os, subprocess, sys, tempfile, difflib, time
bench = sys.argv[1]; aidiag = sys.argv[2]
manifest = json.load(open(os.path.join(bench, "manifest.json")))
orig_of = {}
for name in os.listdir(os.path.join(bench, "originals")):
    if name.endswith(".json"):
        m = json.load(open(os.path.join(bench, "originals", name)))
        orig_of[m["source"]] = os.path.join(bench, "originals", name[:-5] + ".c")
def read(p):
    return open(p, encoding="utf-8", errors="surrogateescape").read().split("\n")
by_file = {}
for mid in manifest["mutants"]:
    m = json.load(open(os.path.join(bench, "mutants", mid + ".json")))
    by_file.setdefault(m["source"], []).append(m)
merged = {}
expected = []  # (source, function, rule)
conflicts = 0
for source, ms in by_file.items():
    base = read(orig_of[source])
    edits = []
    for m in ms:
        mut = read(os.path.join(bench, "mutants", m["id"] + ".c"))
        sm = difflib.SequenceMatcher(None, base, mut, autojunk=False)
        ops = [(i1, i2, mut[j1:j2]) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"]
        edits.append((m, ops))
    # apply non-overlapping edits bottom-up
    all_ops = []
    used = []
    for m, ops in edits:
        lo = min(o[0] for o in ops); hi = max(o[1] for o in ops)
        if any(not (hi < a or lo > b) for a, b in used):
            conflicts += 1
            continue
        used.append((lo - 1, hi + 1))
        all_ops.extend(ops)
        expected.append((source, m["function"], m["expect_rule"], m["id"]))
    text = list(base)
    for i1, i2, repl in sorted(all_ops, key=lambda o: -o[0]):
        text[i1:i2] = repl
    merged[source] = ("\n".join(base), "\n".join(text))
with tempfile.TemporaryDirectory() as repo:
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@e", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@e")
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, capture_output=True)
    run("git", "init", "-q", "-b", "main")
    for source, (old, new) in merged.items():
        os.makedirs(os.path.join(repo, os.path.dirname(source)), exist_ok=True)
        open(os.path.join(repo, source), "w", encoding="utf-8", errors="surrogateescape").write(old)
    # also the originals without mutants
    for source, path in orig_of.items():
        if source not in merged:
            os.makedirs(os.path.join(repo, os.path.dirname(source)), exist_ok=True)
            open(os.path.join(repo, source), "w", encoding="utf-8", errors="surrogateescape").write(open(path, encoding="utf-8", errors="surrogateescape").read())
    run("git", "add", "."); run("git", "commit", "-q", "-m", "base")
    for source, (old, new) in merged.items():
        open(os.path.join(repo, source), "w", encoding="utf-8", errors="surrogateescape").write(new)
    t = time.monotonic()
    out = subprocess.run([aidiag, "check", "--diff", "HEAD", "--format", "json"], cwd=repo, capture_output=True, text=True)
    elapsed = time.monotonic() - t
    report = json.loads(out.stdout)
    texts = {s: merged[s][1].split("\n") for s in merged}
def function_at(source, line):
    lines = texts[source]
    # walk up to the line that opens the function ("{" at column 0), take the header above it
    i = line - 1
    while i >= 0 and lines[i] != "{":
        i -= 1
    j = i - 1
    while j >= 0 and "(" not in lines[j]:
        j -= 1
    header = " ".join(lines[max(0, j - 2): i])
    return header
found = set(); extra = []
for f in report["files"]:
    for x in f["findings"]:
        if x["severity"] not in ("warning", "error"):
            continue
        header = function_at(f["path"], x["range"]["start"]["line"])
        hit = [e for e in expected if e[0] == f["path"] and e[2] == x["rule"] and (e[1] + "(") in header]
        if hit:
            found.add(hit[0][3])
        else:
            extra.append((f["path"], x["range"]["start"]["line"], x["rule"], x["message"][:90]))
print(f"mutants merged: {len(expected)} (skipped {conflicts} overlapping); reported: {len(found)}; other findings: {len(extra)}; {elapsed:.2f} s; stderr: {out.stderr.strip()}")
for e in extra[:20]: print("extra:", e)
