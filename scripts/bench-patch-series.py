#!/usr/bin/env python3
"""A 20-patch series on real kernel files, for `aidiag check --patch` (the patch-review issue).

Built from a kernel-mutants benchmark (../shared/tools/kernel_mutants.py gen ... --out BENCH):
a git repository holds the original files; patches 1-10 each inject one mutant (one real-looking
bug in one kernel function) and add a pr_debug() line at the start of two other functions of the
same file; patches 11-20 add such a line to three functions of another file. 60 functions touched.
Then `aidiag check --patch` runs on the series, timed, and each patch's introduced findings are
compared with what was injected.

usage: scripts/bench-patch-series.py BENCH [--aidiag PATH]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.org",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.org")


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, env=ENV, check=True,
                          capture_output=True, text=True).stdout


def bodies(lines, skip):
    """0-based indices of lines that open a function body ("{" alone at column 0), outside skip."""
    return [i for i, line in enumerate(lines) if line == "{" and not (skip[0] <= i <= skip[1])]


def insert_debug(lines, at):
    lines.insert(at + 1, '\tpr_debug("%s\\n", __func__);')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bench")
    parser.add_argument("--aidiag", default="target/release/aidiag")
    args = parser.parse_args()
    aidiag = os.path.abspath(args.aidiag)
    manifest = json.load(open(os.path.join(args.bench, "manifest.json")))
    mutants = []
    for mid in manifest["mutants"]:
        meta = json.load(open(os.path.join(args.bench, "mutants", mid + ".json")))
        mutants.append(meta)
    # Ten mutants from distinct files, kinds in turn.
    chosen, used = [], set()
    for kind in ["leak", "lock", "unchecked", "uaf"] * 10:
        for meta in mutants:
            if meta["kind"] == kind and meta["source"] not in used:
                chosen.append(meta)
                used.add(meta["source"])
                break
        if len(chosen) == 10:
            break
    originals = {}
    for name in sorted(os.listdir(os.path.join(args.bench, "originals"))):
        if name.endswith(".json"):
            meta = json.load(open(os.path.join(args.bench, "originals", name)))
            originals[meta["source"]] = os.path.join(args.bench, "originals", name[:-5] + ".c")
    others = [s for s in sorted(originals) if s not in used][:10]

    with tempfile.TemporaryDirectory() as repo:
        git(repo, "init", "-q", "-b", "main")
        for source in list(used) + others:
            path = os.path.join(repo, source)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(originals[source], encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "base")
        expected = []
        for n in range(20):
            if n < 10:
                meta = chosen[n]
                source = meta["source"]
                with open(os.path.join(args.bench, "mutants", meta["id"] + ".c"),
                          encoding="utf-8", errors="surrogateescape") as f:
                    lines = f.read().split("\n")
                skip = (meta["func_start"] - 1, meta["func_end"] - 1)
                targets = bodies(lines, skip)[:2]
                shift = sum(1 for t in targets if t < skip[0])
                expected.append((meta["expect_rule"], meta["func_start"] + shift,
                                 meta["func_end"] + shift, meta["function"]))
                subject = f"{os.path.dirname(source)}: rework {meta['function']}"
            else:
                source = others[n - 10]
                with open(os.path.join(repo, source), encoding="utf-8",
                          errors="surrogateescape") as f:
                    lines = f.read().split("\n")
                targets = bodies(lines, (-1, -1))[:3]
                expected.append(None)
                subject = f"{os.path.dirname(source)}: trace three functions"
            for at in sorted(targets, reverse=True):
                insert_debug(lines, at)
            with open(os.path.join(repo, source), "w", encoding="utf-8",
                      errors="surrogateescape") as f:
                f.write("\n".join(lines))
            git(repo, "commit", "-q", "-am", subject)
        series = git(repo, "format-patch", "--stdout", "main~20")
        git(repo, "reset", "-q", "--hard", "main~20")
        series_path = os.path.join(repo, "..", os.path.basename(repo) + ".mbox")
        with open(series_path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(series)
        started = time.monotonic()
        run = subprocess.run([aidiag, "check", "--patch", series_path, "--format", "json"],
                             cwd=repo, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        os.unlink(series_path)
    report = json.loads(run.stdout)
    found = missed = extra = 0
    for patch, want in zip(report["patches"], expected):
        findings = [f for file in patch["files"] for f in file["findings"]
                    if f["severity"] in ("warning", "error")]
        if want is None:
            extra += len(findings)
            for f in findings:
                print(f"patch {patch['index']}: unexpected {f['rule']} at line "
                      f"{f['range']['start']['line']}: {f['message']}")
            continue
        rule, start, end, function = want
        hit = [f for f in findings if f["rule"] == rule and start <= f["range"]["start"]["line"] <= end]
        if hit:
            found += 1
        else:
            missed += 1
            print(f"patch {patch['index']}: {rule} in {function} not reported")
        for f in findings:
            if f not in hit:
                extra += 1
                print(f"patch {patch['index']}: also {f['rule']} at line "
                      f"{f['range']['start']['line']}: {f['message']}")
    applied = sum(1 for p in report["patches"] if p["applied"])
    print(f"series: 20 patches ({applied} applied), 60 functions touched, {found} of 10 injected "
          f"bugs reported on their patch, {missed} missed, {extra} other findings; "
          f"aidiag check --patch took {elapsed:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
