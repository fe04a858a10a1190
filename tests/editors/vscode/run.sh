#!/usr/bin/env bash
# The VS Code test: the packaged extension (editors/vscode/aidiag.vsix) installed into
# code-server 4.96.4, a copy of tests/editors/driver.c opened in a workspace, and
# tests/editors/vscode/suite/index.js run in the extension host (see driver.js).
# Needs tests/editors/vscode/setup.sh first (installs into $AIDIAG_EDITOR_CACHE and builds the
# .vsix). The server binary: $AIDIAG_BIN, default target/debug/aidiag.
# Usage: tests/editors/vscode/run.sh                 the test
#        tests/editors/vscode/run.sh --screenshots DIR   PNGs of a warning, a hover and the
#                                                        quick-fix menu into DIR (no test)
set -euo pipefail
screenshots=
if [ "${1:-}" = --screenshots ]; then
    screenshots=$(mkdir -p "$2" && cd "$2" && pwd)
fi
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cache=${AIDIAG_EDITOR_CACHE:-$HOME/.cache/aidiag-editor-tests}
bin=${AIDIAG_BIN:-$repo/target/debug/aidiag}
case $bin in /*) ;; *) bin="$PWD/$bin" ;; esac
code_server="$cache/code-server-4.96.4/node_modules/code-server"
puppeteer="$cache/puppeteer-core-24.43.1"
vsix="$repo/editors/vscode/aidiag.vsix"
for needed in "$code_server/out/node/entry.js" "$puppeteer/node_modules/puppeteer-core" "$vsix"; do
    [ -e "$needed" ] || { echo "missing $needed: run tests/editors/vscode/setup.sh first"; exit 1; }
done

work=$(mktemp -d)
# VSCODE_TEST_KEEP=1 keeps the folder (code-server's logs, the extension's output) for a look.
[ -n "${VSCODE_TEST_KEEP:-}" ] && echo "work folder: $work" || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ws" "$work/ud/User" "$work/ud/Machine"
cp "${AIDIAG_TEST_FILE:-$repo/tests/editors/driver.c}" "$work/ws/driver.c"
# code-server's window is a remote one: machine-scoped settings such as aidiag.serverPath are
# read from the remote (Machine) settings, the others from the user settings. There, a wrong
# setting that the server must report.
node -e '
    const fs = require("fs");
    const [machine, user, bin] = process.argv.slice(1);
    fs.writeFileSync(machine, JSON.stringify({ "aidiag.serverPath": bin }, null, 2));
    const screenshots = process.argv[4] !== "";
    fs.writeFileSync(user, JSON.stringify({
        ...(screenshots ? { "editor.fontSize": 15, "editor.minimap.enabled": false, "workbench.colorTheme": "Default Light Modern" } : { "aidiag.debounceMs": -5 }),
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "update.mode": "none",
        "security.workspace.trust.enabled": false,
        "git.enabled": false,
    }, null, 2));
' "$work/ud/Machine/settings.json" "$work/ud/User/settings.json" "$bin" "$screenshots"

export XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" XDG_CACHE_HOME="$work/cache"
# No extension gallery: code-server would otherwise try to reach the public one.
export EXTENSIONS_GALLERY='{"serviceUrl":"http://127.0.0.1:9/gallery","itemUrl":"http://127.0.0.1:9/item"}'
node "$code_server/out/node/entry.js" --user-data-dir "$work/ud" --extensions-dir "$work/ext" \
    --install-extension "$vsix" > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
extension=$(echo "$work"/ext/aidiag.aidiag-*)
[ -f "$extension/package.json" ] || { echo "the .vsix did not install"; cat "$work/install.log"; exit 1; }

CODE_SERVER_ENTRY="$code_server/out/node/entry.js" PUPPETEER_DIR="$puppeteer" VSCODE_TEST_WORK="$work" \
    VSCODE_TEST_WORKSPACE="$work/ws" VSCODE_TEST_EXTENSION="$extension" VSCODE_SCREENSHOTS="$screenshots" \
    node "$repo/tests/editors/vscode/driver.js"
