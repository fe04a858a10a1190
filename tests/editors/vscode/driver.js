// Drives the VS Code test: starts code-server, opens it in headless Chromium through
// puppeteer-core with extensionDevelopmentPath/extensionTestsPath in the URL's payload, and
// exits with the code the extension host reports through codeAutomationExit (0 only when the
// server's window/showMessage about the wrong setting was also shown as a notification toast).
// With VSCODE_SCREENSHOTS=DIR it runs no test: it opens driver.c with the installed extension
// and saves vscode-warning.png, vscode-hover.png and vscode-quickfix.png into DIR.
// Run by tests/editors/vscode/run.sh, which prepares the environment below.
"use strict";
const { spawn } = require("child_process");
const http = require("http");
const net = require("net");
const path = require("path");

const env = process.env;
const puppeteer = require(path.join(env.PUPPETEER_DIR, "node_modules", "puppeteer-core"));
const work = env.VSCODE_TEST_WORK;
const workspace = env.VSCODE_TEST_WORKSPACE;
const extensionDir = env.VSCODE_TEST_EXTENSION;
const testsPath = path.join(__dirname, "suite", "index.js");
const timeoutMs = Number(env.VSCODE_TEST_TIMEOUT_MS || 60000);
const toastText = env.VSCODE_TEST_EXPECT_TOAST || "aidiag.debounceMs";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function get(url) {
  return new Promise((resolve) => {
    const request = http.get(url, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on("error", () => resolve(0));
    request.setTimeout(1000, () => request.destroy());
  });
}

/** Opens the window with the extension tests in its payload; the exit code they report. */
async function runTests(page, port, lines) {
  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = [
    ["extensionDevelopmentPath", remote(extensionDir)],
    ["extensionTestsPath", remote(testsPath)],
    ["skipWelcome", "true"],
    ["skipReleaseNotes", "true"],
  ];
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  await page.setViewport({ width: 1280, height: 800 });
  let toastSeen = false;
  const exited = new Promise((resolve) => {
    page.exposeFunction("codeAutomationExit", (exitCode) => resolve(exitCode));
  });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  const poll = setInterval(async () => {
    try {
      const found = await page.evaluate(
        (needle) =>
          [...document.querySelectorAll(".notification-toast, .notifications-toasts .monaco-list-row")].some((n) =>
            (n.textContent || "").includes(needle),
          ),
        toastText,
      );
      toastSeen = toastSeen || found;
    } catch {
      // The page is navigating or closing.
    }
  }, 200);
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), timeoutMs));
  const result = await Promise.race([exited, timeout]);
  clearInterval(poll);
  if (result === "timeout") {
    lines.push(`FAIL: the extension tests did not finish within ${timeoutMs} ms`);
  } else if (result !== 0) {
    lines.push(`FAIL: the extension tests exited with ${result}`);
  } else if (!toastSeen) {
    lines.push(`FAIL: no notification toast containing "${toastText}" was shown`);
  } else {
    lines.push(`notification toast with "${toastText}": shown`);
    return 0;
  }
  return 1;
}

/** Opens driver.c with the installed extension and takes PNGs of what a user sees. */
async function screenshots(page, port, dir) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await page.setViewport({ width: 1100, height: 640 });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(".monaco-workbench", { timeout: 30000 });
  await sleep(1500);
  // Open driver.c from the explorer.
  const entry = await page.waitForSelector('.explorer-folders-view .monaco-list-row[aria-label^="driver.c"]', { timeout: 20000 });
  await entry.click();
  const squiggle = await page.waitForSelector(".squiggly-warning", { timeout: 20000 });
  // The problems panel.
  await page.keyboard.down("Control");
  await page.keyboard.down("Shift");
  await page.keyboard.press("KeyM");
  await page.keyboard.up("Shift");
  await page.keyboard.up("Control");
  await page.waitForSelector(".markers-panel .monaco-list-row", { timeout: 10000 });
  await page.mouse.move(5, 5);
  await sleep(1000);
  await page.screenshot({ path: path.join(dir, "vscode-warning.png") });

  const box = await squiggle.boundingBox();
  await page.mouse.move(box.x + Math.min(20, box.width / 2), box.y + box.height / 2);
  await page.waitForSelector(".monaco-hover:not(.hidden) .markdown-hover", { visible: true, timeout: 10000 });
  await sleep(800);
  await page.screenshot({ path: path.join(dir, "vscode-hover.png") });

  await page.mouse.move(5, 5);
  await page.keyboard.press("Escape");
  await page.mouse.click(box.x + 10, box.y + box.height / 2);
  await sleep(300);
  await page.keyboard.down("Control");
  await page.keyboard.press("Period");
  await page.keyboard.up("Control");
  await page.waitForSelector(".action-widget", { visible: true, timeout: 10000 });
  await sleep(800);
  await page.screenshot({ path: path.join(dir, "vscode-quickfix.png") });
}

async function main() {
  const started = Date.now();
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [
      env.CODE_SERVER_ENTRY,
      "--user-data-dir", path.join(work, "ud"),
      "--extensions-dir", path.join(work, "ext"),
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${port}`,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      workspace,
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const serverLog = [];
  server.stdout.on("data", (d) => serverLog.push(d.toString()));
  server.stderr.on("data", (d) => serverLog.push(d.toString()));
  let browser;
  let code = 1;
  const lines = [];
  try {
    const deadline = Date.now() + 30000;
    while ((await get(`http://127.0.0.1:${port}/healthz`)) !== 200) {
      if (Date.now() > deadline || server.exitCode !== null) {
        throw new Error("code-server did not start");
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    browser = await puppeteer.launch({
      executablePath: env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
      userDataDir: path.join(work, "chromium"),
    });
    const page = await browser.newPage();
    page.on("console", (message) => {
      const text = message.text().replace(/^%c\s*\w+\s+color: #\w+\s*/, "");
      if (text.includes("[aidiag-test]") || /^(error|ERR)\b|Error:/.test(text)) {
        lines.push(text);
      }
    });
    page.on("pageerror", (error) => lines.push(`page error: ${error.message}`));
    if (env.VSCODE_SCREENSHOTS) {
      await screenshots(page, port, env.VSCODE_SCREENSHOTS);
      lines.push(`screenshots written to ${env.VSCODE_SCREENSHOTS}`);
      code = 0;
    } else {
      code = await runTests(page, port, lines);
    }
  } catch (error) {
    lines.push(`FAIL: ${error && error.stack ? error.stack : error}`);
  } finally {
    if (browser) {
      await browser.close().catch(() => {});
    }
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
  }
  for (const line of lines) {
    console.log(line);
  }
  if (code !== 0) {
    console.log("--- code-server log ---");
    console.log(serverLog.join("").trimEnd());
  }
  console.log(`${code === 0 ? "PASS" : "FAIL"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(code);
}

main();
