#!/usr/bin/env bash
# Installs what the VS Code test needs, each part only when missing:
#   - Debian: chromium (driven headless by puppeteer), ripgrep and libkrb5-dev (code-server's
#     native modules);
#   - npm, into $AIDIAG_EDITOR_CACHE (default ~/.cache/aidiag-editor-tests), reused by later runs:
#     code-server 4.96.4 (VS Code 1.96.4, the last release for Node 20) and puppeteer-core;
#   - the extension: `npm ci` in editors/vscode, compiled and packaged as editors/vscode/aidiag.vsix.
# Usage: tests/editors/vscode/setup.sh   (from anywhere; prints what it installs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cache=${AIDIAG_EDITOR_CACHE:-$HOME/.cache/aidiag-editor-tests}
CODE_SERVER_VERSION=4.96.4
PUPPETEER_VERSION=24.43.1
mkdir -p "$cache"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/rg ] || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "apt: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# code-server from npm, made to run offline (see shared design notes, EDITORS.md):
# its VS Code part pins @vscode/proxy-agent to a git tarball that cannot be fetched, so that
# pin is dropped and npm takes the registry's version; the native modules are built against
# the system's Node headers (scripts are skipped at install, as its postinstall would run a
# plain npm install); its ripgrep download is replaced by Debian's rg.
cs="$cache/code-server-$CODE_SERVER_VERSION"
if [ ! -f "$cs/.complete" ]; then
    echo "npm: installing code-server $CODE_SERVER_VERSION into $cs"
    rm -rf "$cs" "$cs.partial"
    mkdir -p "$cs.partial"
    (
        cd "$cs.partial"
        echo '{"private": true}' > package.json
        npm install --no-audit --no-fund --loglevel=error --ignore-scripts "code-server@$CODE_SERVER_VERSION" >/dev/null
        # argon2 (password hashing; loaded even with --auth none): its prebuilt download fails
        # offline and falls back to a build.
        npm_config_nodedir=/usr npm rebuild --loglevel=error argon2 >/dev/null
        cd node_modules/code-server/lib/vscode
        node -e '
            const fs = require("fs");
            const file = "npm-shrinkwrap.json";
            const lock = JSON.parse(fs.readFileSync(file, "utf8"));
            const entry = lock.packages && lock.packages["node_modules/@vscode/proxy-agent"];
            if (entry) { delete entry.resolved; delete entry.integrity; }
            fs.writeFileSync(file, JSON.stringify(lock, null, 2));
        '
        npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts >/dev/null
        npm_config_nodedir=/usr npm rebuild --loglevel=error node-pty @parcel/watcher @vscode/spdlog \
            native-watchdog kerberos @vscode/deviceid >/dev/null
        mkdir -p node_modules/@vscode/ripgrep/bin
        cp /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
        ln -sfn node_modules node_modules.asar
    )
    touch "$cs.partial/.complete"
    mv "$cs.partial" "$cs"
fi

pp="$cache/puppeteer-core-$PUPPETEER_VERSION"
if [ ! -f "$pp/.complete" ]; then
    echo "npm: installing puppeteer-core $PUPPETEER_VERSION into $pp"
    rm -rf "$pp" "$pp.partial"
    mkdir -p "$pp.partial"
    (
        cd "$pp.partial"
        echo '{"private": true}' > package.json
        npm install --no-audit --no-fund --loglevel=error --ignore-scripts "puppeteer-core@$PUPPETEER_VERSION" >/dev/null
    )
    touch "$pp.partial/.complete"
    mv "$pp.partial" "$pp"
fi

# The extension: reinstalled only when package-lock.json changed, rebuilt every time (seconds).
cd "$repo/editors/vscode"
if ! cmp -s package-lock.json node_modules/.aidiag-lock 2>/dev/null; then
    echo "npm: npm ci in editors/vscode"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json node_modules/.aidiag-lock
fi
npx --no-install tsc -p .
# vsce warns that the extension is not bundled (about 200 small files); only failures matter.
if ! npx --no-install vsce package --allow-missing-repository --out aidiag.vsix > vsce.log 2>&1; then
    cat vsce.log
    exit 1
fi
rm -f vsce.log
echo "built editors/vscode/aidiag.vsix"
