// The VS Code extension test, run inside the extension host (extensionTestsPath): the aidiag
// extension starts the server for a C file, the wrong setting in the user settings
// (aidiag.debounceMs = -5) comes back as one window/showMessage, the warning arrives, hover
// explains it, minimumSeverity hides it, and the preferred quick fix is applied; the warning
// then goes away. run() rejecting makes the test fail (exit code 1 through codeAutomationExit).
"use strict";
const vscode = require("vscode");

const EXPECTED_CODE = "leak-on-error";
const LINE = 13; // `return ret;` after foo_hw_read fails: buf leaks
const COLUMN = 2;

function log(message) {
  console.log(`[aidiag-test] ${message}`);
}

function fail(message) {
  throw new Error(message);
}

/** Polls `probe` until it returns something truthy, or fails with `what` after `ms`. */
async function waitFor(what, probe, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      fail(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function aidiagDiagnostics(uri) {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === "aidiag");
}

function codeOf(diagnostic) {
  const code = diagnostic.code;
  return typeof code === "object" && code !== null ? String(code.value) : String(code);
}

function hoverText(hovers) {
  const parts = [];
  for (const hover of hovers || []) {
    for (const content of hover.contents) {
      parts.push(typeof content === "string" ? content : content.value);
    }
  }
  return parts.join("\n");
}

async function setUserSetting(key, value) {
  await vscode.workspace.getConfiguration("aidiag").update(key, value, vscode.ConfigurationTarget.Global);
}

exports.run = async function run() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  if (!folder) {
    fail("no workspace folder open");
  }
  const uri = vscode.Uri.joinPath(folder.uri, "driver.c");
  const document = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(document);
  if (document.languageId !== "c") {
    fail(`driver.c opened as ${document.languageId}, not c`);
  }
  const original = document.getText();

  const extension = vscode.extensions.getExtension("aidiag.aidiag");
  if (!extension) {
    fail("the aidiag extension is not installed");
  }
  const api = await waitFor("the extension to activate (onLanguage:c)", () => extension.isActive && extension.exports, 10000);
  log(`activated; status: ${api.status().text}`);

  // The wrong setting: one clear message naming it and the accepted values.
  const wrong = await waitFor(
    "the server's window/showMessage about aidiag.debounceMs = -5",
    () => api.messages.find((m) => m.message.includes("aidiag.debounceMs")),
  );
  if (wrong.type !== 1 || !wrong.message.includes("0 to 10000") || !wrong.message.includes("-5")) {
    fail(`unexpected message (type ${wrong.type}): ${wrong.message}`);
  }
  log(`showMessage: ${wrong.message}`);

  const diagnostic = await waitFor("an aidiag diagnostic on driver.c", () => aidiagDiagnostics(uri)[0]);
  log(`diagnostic: ${codeOf(diagnostic)} at ${diagnostic.range.start.line}:${diagnostic.range.start.character}: ${diagnostic.message}`);
  if (codeOf(diagnostic) !== EXPECTED_CODE) {
    fail(`diagnostic code is ${codeOf(diagnostic)}, expected ${EXPECTED_CODE}`);
  }
  if (diagnostic.range.start.line !== LINE || diagnostic.range.start.character !== COLUMN) {
    fail(`diagnostic at ${diagnostic.range.start.line}:${diagnostic.range.start.character}, expected ${LINE}:${COLUMN}`);
  }
  if (diagnostic.severity !== vscode.DiagnosticSeverity.Warning) {
    fail(`diagnostic severity ${diagnostic.severity}, expected Warning`);
  }
  if (aidiagDiagnostics(uri).length !== 1) {
    fail(`expected one aidiag diagnostic, got ${aidiagDiagnostics(uri).length}`);
  }
  // Still exactly one message for the wrong setting (initializationOptions and the first
  // workspace/didChangeConfiguration carry the same settings; the second is not sent).
  const about = api.messages.filter((m) => m.message.includes("aidiag.debounceMs"));
  if (about.length !== 1) {
    fail(`expected one message about aidiag.debounceMs, got ${about.length}: ${JSON.stringify(about)}`);
  }
  await waitFor("the status bar to say ready", () => api.state() === "ready" && /aidiag: ready/.test(api.status().text), 5000);
  log(`status bar: ${api.status().text}`);

  const hovers = await vscode.commands.executeCommand(
    "vscode.executeHoverProvider",
    uri,
    new vscode.Position(LINE, COLUMN + 1),
  );
  const text = hoverText(hovers);
  if (!text.includes("Why it matters")) {
    fail(`hover has no explanation: ${JSON.stringify(text)}`);
  }
  log("hover: ok");

  // aidiag.minimumSeverity = error hides the warning; back to the default shows it again.
  await setUserSetting("minimumSeverity", "error");
  await waitFor("minimumSeverity=error to hide the warning", () => aidiagDiagnostics(uri).length === 0, 5000);
  await setUserSetting("minimumSeverity", undefined);
  await waitFor("the warning to come back", () => aidiagDiagnostics(uri).length === 1, 5000);
  log("minimumSeverity: ok");

  const actions = await vscode.commands.executeCommand(
    "vscode.executeCodeActionProvider",
    uri,
    diagnostic.range,
  );
  const fixes = (actions || []).filter((a) => a instanceof vscode.CodeAction || a.edit !== undefined);
  log(`code actions: ${fixes.map((a) => `${a.title}${a.isPreferred ? " (preferred)" : ""}`).join("; ")}`);
  const preferred = fixes.find((a) => a.isPreferred);
  if (!preferred || !preferred.edit) {
    fail(`no preferred quick fix with an edit among ${JSON.stringify((actions || []).map((a) => a.title))}`);
  }
  if (!(await vscode.workspace.applyEdit(preferred.edit))) {
    fail("applyEdit returned false");
  }
  const fixed = document.getText();
  const originalLines = original.split("\n");
  const fixedLines = fixed.split("\n");
  if (fixedLines[LINE].trim() !== "goto err_free;") {
    fail(`line ${LINE} after the fix is ${JSON.stringify(fixedLines[LINE])}:\n${fixed}`);
  }
  const changed = fixedLines.filter((line, i) => line !== originalLines[i]).length;
  if (fixedLines.length !== originalLines.length || changed !== 1) {
    fail(`the fix changed more than line ${LINE}:\n${fixed}`);
  }
  log(`quick fix "${preferred.title}" applied: ${fixedLines[LINE].trim()}`);
  await waitFor("the warning to go after the fix", () => aidiagDiagnostics(uri).length === 0, 15000);
  log("warning gone after the fix");

  await vscode.commands.executeCommand("aidiag.restartServer");
  await waitFor("the server to be ready after aidiag.restartServer", () => api.state() === "ready", 10000);
  log("restart: ok");

  // A wrong aidiag.serverPath (a workspace setting; it is machine-overridable) restarts the
  // server and says what to set; putting it back brings the server back.
  const config = () => vscode.workspace.getConfiguration("aidiag");
  await config().update("serverPath", "/nonexistent/aidiag", vscode.ConfigurationTarget.Workspace);
  await waitFor("the error for a wrong aidiag.serverPath", () => api.state() === "error", 10000);
  const { text: errorText, tooltip } = api.status();
  if (!errorText.includes("aidiag: error") || !tooltip.includes("/nonexistent/aidiag") || !tooltip.includes("Set aidiag.serverPath")) {
    fail(`unexpected status for a wrong serverPath: ${errorText} / ${tooltip}`);
  }
  log(`wrong serverPath: ${tooltip.split("\n")[0]}`);
  await config().update("serverPath", undefined, vscode.ConfigurationTarget.Workspace);
  await waitFor("the server to be ready again", () => api.state() === "ready", 10000);
  log("serverPath restored: ok");
  log("PASS");
};
