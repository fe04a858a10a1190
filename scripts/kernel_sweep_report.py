#!/usr/bin/env python3
"""Summarises an `aidiag check --format json` report over kernel subtrees (scripts/kernel-sweep.sh).

Prints warnings and errors per 100,000 lines of .c per rule, the distinct root causes (one per
file, rule and first piece of evidence: the lock taken, the allocation, the first free), the time
and lines per second, and a random sample of root causes (fixed seed) for triage.
"""
import argparse
import collections
import json
import os
import random


def c_lines(root, dirs):
    total = 0
    for d in dirs:
        for base, _, files in os.walk(os.path.join(root, d)):
            for name in files:
                if name.endswith(".c"):
                    with open(os.path.join(base, name), "rb") as f:
                        total += f.read().count(b"\n")
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()

    with open(args.report) as f:
        report = json.load(f)
    seconds = args.end - args.start
    lines = c_lines(args.root, args.dirs)
    per_rule = collections.Counter()
    hints = collections.Counter()
    causes = {}
    for file in report["files"]:
        path = os.path.relpath(file["path"], args.root)
        for finding in file["findings"]:
            if finding["severity"] not in ("warning", "error"):
                hints[finding["rule"]] += 1
                continue
            per_rule[finding["rule"]] += 1
            evidence = finding["related"][0]["range"] if finding["related"] else finding["range"]
            key = (path, finding["rule"], evidence["start"]["line"])
            causes.setdefault(key, []).append(finding)
    total = sum(per_rule.values())
    per_100k = lambda n: n * 100_000 / max(lines, 1)
    print(f"subtrees: {' '.join(args.dirs)}")
    print(f"files checked: {len(report['files'])}; lines of .c: {lines}")
    print(f"time: {seconds:.1f} s; {lines / max(seconds, 1e-9):,.0f} lines of .c per second")
    print(f"warnings and errors: {total} ({per_100k(total):.2f} per 100,000 lines); "
          f"distinct root causes: {len(causes)} ({per_100k(len(causes)):.2f} per 100,000 lines)")
    print(f"hints and information (not counted): {sum(hints.values())}")
    for rule, n in sorted(per_rule.items(), key=lambda x: -x[1]):
        roots = sum(1 for k in causes if k[1] == rule)
        print(f"  {rule:24} {n:5} ({per_100k(n):.2f} per 100k), {roots} root causes")
    for rule, n in sorted(hints.items(), key=lambda x: -x[1]):
        print(f"  hint {rule:19} {n:5}")
    keys = sorted(causes)
    rng = random.Random(args.seed)
    chosen = sorted(rng.sample(keys, min(args.sample, len(keys))))
    print(f"\nsample of {len(chosen)} root causes (seed {args.seed}):")
    for i, key in enumerate(chosen):
        finding = causes[key][0]
        line = finding["range"]["start"]["line"]
        print(f"{i:3} {key[0]}:{line} [{key[1]}] {finding['message']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lines": lines, "seconds": seconds, "per_rule": per_rule,
                       "root_causes": len(causes),
                       "sample": [{"path": k[0], "rule": k[1],
                                   "line": causes[k][0]["range"]["start"]["line"],
                                   "message": causes[k][0]["message"]} for k in chosen]},
                      f, indent=1)


if __name__ == "__main__":
    main()
