#!/usr/bin/env python3
"""Turns raw peer-tool output into the findings JSON that `aidiag eval --external` reads:
[{"file": "NAME.c", "line": 12, "message": "..."}, ...] (file = basename, line 1-based).

usage: peer_to_json.py cppcheck RAW_FILE OUT.json
       peer_to_json.py clang RAW_DIR OUT.json

cppcheck: RAW_FILE holds lines printed with
  --template='{file}:{line}:{severity}:{id}:{message}'; only severities error and warning count.
clang: RAW_DIR holds one NAME.c.txt per case with the stderr of
  `clang --analyze -Xclang -analyzer-output=text`; every analyzer warning (a warning tagged with
  a checker name such as [unix.Malloc]) counts, compiler warnings ([-Wfoo]) do not. A warning
  whose location is in a header (a static inline helper, say) is moved to the last path note
  that lies in the case file, i.e. the call site in the case.
"""
import json
import os
import re
import sys


def cppcheck(raw_path):
    out = []
    with open(raw_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            parts = line.split(":", 4)
            if len(parts) != 5 or not parts[1].isdigit():
                continue
            path, lineno, severity, ident, message = parts
            if severity not in ("error", "warning"):
                continue
            out.append({
                "file": os.path.basename(path),
                "line": int(lineno),
                "message": f"{message} [{ident}]",
            })
    return out


DIAG = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<kind>warning|error|note): (?P<msg>.*)$")
CHECKER = re.compile(r"\s\[(?P<checker>[A-Za-z][\w.]*)\]$")


def clang(raw_dir):
    out = []
    for name in sorted(os.listdir(raw_dir)):
        if not name.endswith(".c.txt"):
            continue
        case = name[: -len(".txt")]
        records = []  # [path, line, message, [(path, line) of notes]]
        with open(os.path.join(raw_dir, name), encoding="utf-8", errors="replace") as f:
            for raw in f:
                m = DIAG.match(raw.rstrip("\n"))
                if not m:
                    continue
                path, line, kind, msg = m["path"], int(m["line"]), m["kind"], m["msg"]
                if kind == "warning":
                    c = CHECKER.search(msg)
                    if c and not c["checker"].startswith("-W"):
                        records.append([path, line, msg, []])
                    else:
                        records.append(None)  # compiler warning: its notes belong to it
                elif kind == "error":
                    records.append(None)
                elif records and records[-1] is not None:
                    records[-1][3].append((path, line))
        for rec in records:
            if rec is None:
                continue
            path, line, msg, notes = rec
            if os.path.basename(path) != case:
                in_case = [ln for (p, ln) in notes if os.path.basename(p) == case]
                if in_case:
                    msg = f"{msg} (reported in {os.path.basename(path)}:{line})"
                    line = in_case[-1]
            out.append({"file": case, "line": line, "message": msg})
    return out


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("cppcheck", "clang"):
        sys.exit(__doc__)
    engine, src, dst = sys.argv[1:]
    findings = cppcheck(src) if engine == "cppcheck" else clang(src)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(findings, f, indent=1)
        f.write("\n")
    print(f"{engine}: {len(findings)} warnings -> {dst}")


if __name__ == "__main__":
    main()
