// aidiag for VS Code: starts `aidiag lsp` for C files through vscode-languageclient, passes the
// aidiag.* settings to it (initializationOptions, then workspace/didChangeConfiguration), hides
// diagnostics below aidiag.minimumSeverity, and shows the server's state in the status bar.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  Message,
  MessageTransports,
  NotificationMessage,
  ServerOptions,
  ShowMessageParams,
  State,
} from "vscode-languageclient/node";

/** What the server is doing, as the status bar shows it. */
export type ServerState = "starting" | "ready" | "error" | "stopped";

/** The extension's API (the value of `activate`), used by the tests and by other extensions. */
export interface AidiagApi {
  /** Every window/showMessage the server sent since activation, oldest first. */
  readonly messages: ShowMessageParams[];
  /** Fires on each window/showMessage from the server. */
  readonly onMessage: vscode.Event<ShowMessageParams>;
  state(): ServerState;
  /** The status bar item's text and tooltip. */
  status(): { text: string; tooltip: string };
  client(): LanguageClient | undefined;
}

const SEVERITIES: Record<string, vscode.DiagnosticSeverity> = {
  error: vscode.DiagnosticSeverity.Error,
  warning: vscode.DiagnosticSeverity.Warning,
  information: vscode.DiagnosticSeverity.Information,
  hint: vscode.DiagnosticSeverity.Hint,
};

/** A language client that also reports every message the server sends (for showMessage). */
class TappedLanguageClient extends LanguageClient {
  constructor(
    serverOptions: ServerOptions,
    clientOptions: LanguageClientOptions,
    private readonly tap: (message: Message) => void,
  ) {
    super("aidiag", "aidiag", serverOptions, clientOptions);
  }

  protected async createMessageTransports(encoding: string): Promise<MessageTransports> {
    const transports = await super.createMessageTransports(encoding);
    const reader = transports.reader;
    const listen = reader.listen.bind(reader);
    // The client's own showMessage handler runs from the start of the connection, so messages
    // sent while answering `initialize` (a wrong initializationOption) reach us only this way.
    reader.listen = (callback) =>
      listen((message) => {
        try {
          this.tap(message);
        } catch {
          // Never let the status bar break the connection.
        }
        callback(message);
      });
    return transports;
  }
}

class Extension implements AidiagApi {
  readonly messages: ShowMessageParams[] = [];
  private readonly messageEmitter = new vscode.EventEmitter<ShowMessageParams>();
  readonly onMessage = this.messageEmitter.event;
  private readonly output = vscode.window.createOutputChannel("aidiag");
  private readonly item = vscode.window.createStatusBarItem("aidiag.status", vscode.StatusBarAlignment.Left, 0);
  private languageClient: LanguageClient | undefined;
  private serverState: ServerState = "stopped";
  private stateDetail = "";
  /** Diagnostics as the server sent them, before the minimumSeverity filter. */
  private readonly unfiltered = new Map<string, { uri: vscode.Uri; diagnostics: vscode.Diagnostic[] }>();
  /** Documents changed since their last diagnostics, with when the change was sent. */
  private readonly checking = new Map<string, number>();
  /** Work-done progress the server reported, by token. */
  private readonly progress = new Map<string, string>();
  private modelProblem: string | undefined;
  /** The server settings last sent, as JSON, so an unchanged set is not sent again. */
  private lastSent = "";
  private checkingTimer: NodeJS.Timeout | undefined;
  /** The running server process (spawned here, so that a stop can always end it). */
  private child: ChildProcess | undefined;
  /** When the server's connection closed unasked, for the last few minutes. */
  private crashes: number[] = [];
  /** Restarts run one after the other. */
  private restarting: Promise<void> = Promise.resolve();

  constructor(private readonly context: vscode.ExtensionContext) {
    this.item.name = "aidiag";
    this.item.command = "aidiag.showOutput";
    context.subscriptions.push(this.output, this.item, this.messageEmitter);
    this.render();
    this.item.show();
  }

  state(): ServerState {
    return this.serverState;
  }

  status(): { text: string; tooltip: string } {
    const tooltip = this.item.tooltip;
    return { text: this.item.text, tooltip: typeof tooltip === "string" ? tooltip : (tooltip?.value ?? "") };
  }

  client(): LanguageClient | undefined {
    return this.languageClient;
  }

  async start(): Promise<void> {
    const binary = findServer(this.output);
    if (typeof binary !== "string") {
      this.setState("error", binary.problem);
      this.output.appendLine(binary.problem);
      // Not awaited: the notification stays until the user closes it.
      void vscode.window.showErrorMessage(binary.problem, "Open Settings").then((choice) => {
        if (choice === "Open Settings") {
          void vscode.commands.executeCommand("workbench.action.openSettings", "aidiag.serverPath");
        }
      });
      return;
    }
    this.output.appendLine(`starting ${binary} lsp`);
    const settings = serverSettings();
    this.lastSent = JSON.stringify(settings);
    const folder = vscode.workspace.workspaceFolders?.[0];
    const cwd = folder?.uri.scheme === "file" ? folder.uri.fsPath : os.homedir();
    const serverOptions: ServerOptions = async () => {
      const child = spawn(binary, ["lsp"], { cwd, stdio: "pipe" });
      child.on("error", (error) => this.output.appendLine(`server process: ${error.message}`));
      child.on("exit", (code, signal) => this.output.appendLine(`server process exited (${signal ?? `code ${code}`})`));
      this.child = child;
      return child;
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "c" },
        { scheme: "untitled", language: "c" },
      ],
      initializationOptions: settings,
      synchronize: { configurationSection: "aidiag" },
      outputChannel: this.output,
      errorHandler: {
        error: (_error, _message, count) => ({
          action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
          handled: true,
        }),
        closed: () => {
          if (this.languageClient !== client) {
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          const now = Date.now();
          this.crashes = this.crashes.filter((t) => now - t < 180_000);
          this.crashes.push(now);
          if (this.crashes.length >= 5) {
            return {
              action: CloseAction.DoNotRestart,
              message: "aidiag: the server stopped 5 times in 3 minutes and is not restarted again. See “aidiag: Show Output”, then run “aidiag: Restart Server”.",
            };
          }
          this.output.appendLine("the server's connection closed; restarting it");
          return { action: CloseAction.Restart, handled: true };
        },
      },
      middleware: {
        handleDiagnostics: (uri, diagnostics, next) => {
          this.unfiltered.set(uri.toString(), { uri, diagnostics });
          this.checking.delete(uri.toString());
          this.render();
          next(uri, filterSeverity(diagnostics));
        },
        didOpen: (document, next) => {
          this.markChecking(document.uri);
          return next(document);
        },
        didChange: (event, next) => {
          this.markChecking(event.document.uri);
          return next(event);
        },
        didClose: (document, next) => {
          this.unfiltered.delete(document.uri.toString());
          this.checking.delete(document.uri.toString());
          this.render();
          return next(document);
        },
        handleWorkDoneProgress: (token, params, next) => {
          const key = String(token);
          if (params.kind === "end") {
            this.progress.delete(key);
          } else {
            const previous = this.progress.get(key) ?? "";
            const title = params.kind === "begin" ? params.title : previous.split(":")[0];
            const parts = [title, params.message, params.percentage !== undefined ? `${params.percentage}%` : undefined];
            this.progress.set(key, parts.filter((p) => p).join(": "));
          }
          this.render();
          next(token, params);
        },
        workspace: {
          // The client sends every aidiag.* setting; the server wants only its own (it reports
          // unknown ones), with empty paths left out, and not the same set twice.
          didChangeConfiguration: async (_sections, _next) => {
            const current = serverSettings();
            const json = JSON.stringify(current);
            if (json === this.lastSent || this.languageClient === undefined) {
              return;
            }
            this.lastSent = json;
            await this.languageClient.sendNotification(DidChangeConfigurationNotification.type, {
              settings: { aidiag: current },
            });
          },
        },
      },
    };
    const client = new TappedLanguageClient(serverOptions, clientOptions, (message) => this.tap(message));
    this.languageClient = client;
    client.onDidChangeState((event) => {
      if (this.languageClient !== client) {
        return;
      }
      if (event.newState === State.Starting) {
        this.setState("starting");
      } else if (event.newState === State.Running) {
        this.setState("ready");
      } else if (this.serverState !== "error") {
        this.setState("stopped", "the server stopped; run “aidiag: Restart Server”");
      }
    });
    this.setState("starting");
    try {
      await client.start();
    } catch (error) {
      if (this.languageClient === client) {
        const problem = `aidiag: the server (${binary} lsp) did not start: ${error instanceof Error ? error.message : String(error)}`;
        this.setState("error", problem);
        this.output.appendLine(problem);
        void vscode.window.showErrorMessage(`${problem}. See the aidiag output for its log.`);
      }
    }
  }

  async stop(): Promise<void> {
    const client = this.languageClient;
    const child = this.child;
    this.languageClient = undefined;
    this.child = undefined;
    this.unfiltered.clear();
    this.checking.clear();
    this.progress.clear();
    if (client !== undefined) {
      try {
        // Sends shutdown and exit; throws when the server never finished starting.
        await client.stop(3000);
      } catch (error) {
        this.output.appendLine(`stopping the server: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, 1000));
      await Promise.race([exited, timer]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
      }
    }
    this.setState("stopped");
  }

  restart(): Promise<void> {
    const run = async () => {
      await this.stop();
      this.modelProblem = undefined;
      this.crashes = [];
      await this.start();
    };
    this.restarting = this.restarting.then(run, run);
    return this.restarting;
  }

  /** Re-applies aidiag.minimumSeverity to the diagnostics already shown. */
  refilter(): void {
    const collection = this.languageClient?.diagnostics;
    if (collection === undefined) {
      return;
    }
    for (const { uri, diagnostics } of this.unfiltered.values()) {
      collection.set(uri, filterSeverity(diagnostics));
    }
  }

  showOutput(): void {
    this.output.show(true);
  }

  render(): void {
    const model = this.modelState();
    const working = [...this.progress.values()];
    if (this.checking.size > 0) {
      working.push(`checking ${this.checking.size} file${this.checking.size === 1 ? "" : "s"}`);
    }
    let icon: string;
    let label: string;
    switch (this.serverState) {
      case "starting":
        icon = "$(sync~spin)";
        label = "starting";
        break;
      case "ready":
        icon = working.length > 0 ? "$(sync~spin)" : "$(check)";
        label = working.length > 0 ? working[0] : "ready";
        break;
      case "error":
        icon = "$(error)";
        label = "error";
        break;
      default:
        icon = "$(circle-slash)";
        label = "stopped";
    }
    this.item.text = `${icon} aidiag: ${label}`;
    const lines = [`aidiag server: ${this.serverState}${this.stateDetail ? ` (${this.stateDetail})` : ""}`];
    lines.push(...working.map((w) => `analysis: ${w}`));
    let findings = 0;
    for (const { diagnostics } of this.unfiltered.values()) {
      findings += diagnostics.length;
    }
    lines.push(`findings in open files: ${findings}`);
    lines.push(`model: ${model}`);
    lines.push("Click to show the aidiag output.");
    this.item.tooltip = lines.join("\n");
    this.item.backgroundColor =
      this.serverState === "error" ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  private modelState(): string {
    const config = vscode.workspace.getConfiguration("aidiag");
    if (!config.get<boolean>("useModel", true)) {
      return "off (aidiag.useModel is false)";
    }
    if (this.modelProblem !== undefined) {
      return `unavailable: ${this.modelProblem}`;
    }
    const uses = [
      config.get<boolean>("modelExplanations", false) ? "explanations" : "",
      config.get<boolean>("modelFixes", false) ? "fixes" : "",
      `verdicts ${config.get<string>("modelVerdicts", "auto")}`,
      `review ${config.get<string>("modelReview", "auto")}`,
    ].filter((u) => u !== "");
    return uses.join(", ");
  }

  private setState(state: ServerState, detail = ""): void {
    this.serverState = state;
    this.stateDetail = detail;
    this.render();
  }

  private markChecking(uri: vscode.Uri): void {
    this.checking.set(uri.toString(), Date.now());
    this.render();
    // A check that was superseded or failed publishes nothing; do not spin for ever.
    if (this.checkingTimer === undefined) {
      this.checkingTimer = setInterval(() => {
        const now = Date.now();
        for (const [key, since] of this.checking) {
          if (now - since > 10_000) {
            this.checking.delete(key);
          }
        }
        if (this.checking.size === 0 && this.checkingTimer !== undefined) {
          clearInterval(this.checkingTimer);
          this.checkingTimer = undefined;
        }
        this.render();
      }, 1000);
    }
  }

  private tap(message: Message): void {
    if (!Message.isNotification(message) || message.method !== "window/showMessage") {
      return;
    }
    const params = (message as NotificationMessage).params as ShowMessageParams;
    this.messages.push(params);
    this.output.appendLine(`server message: ${params.message}`);
    if (/model/i.test(params.message) && !/setting aidiag\./.test(params.message)) {
      this.modelProblem = params.message;
      this.render();
    }
    this.messageEmitter.fire(params);
  }

  dispose(): void {
    if (this.checkingTimer !== undefined) {
      clearInterval(this.checkingTimer);
    }
  }
}

/** The settings the server reads (see the server's settings.rs); empty paths are left out. */
function serverSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration("aidiag");
  const settings: Record<string, unknown> = {
    debounceMs: config.get("debounceMs"),
    useModel: config.get("useModel"),
    modelExplanations: config.get("modelExplanations"),
    modelFixes: config.get("modelFixes"),
    modelVerdicts: config.get("modelVerdicts"),
    modelReview: config.get("modelReview"),
    baseline: config.get("baseline"),
  };
  const modelPath = config.get<string>("modelPath");
  if (modelPath) {
    settings.modelPath = expandPath(modelPath);
  }
  const tokenizerPath = config.get<string>("tokenizerPath");
  if (tokenizerPath) {
    settings.tokenizerPath = expandPath(tokenizerPath);
  }
  return settings;
}

function filterSeverity(diagnostics: vscode.Diagnostic[]): vscode.Diagnostic[] {
  const name = vscode.workspace.getConfiguration("aidiag").get<string>("minimumSeverity", "hint");
  const least = SEVERITIES[name] ?? vscode.DiagnosticSeverity.Hint;
  return diagnostics.filter((d) => d.severity <= least);
}

function expandPath(p: string): string {
  if (p === "~" || p.startsWith("~/")) {
    p = path.join(os.homedir(), p.slice(1));
  }
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!path.isAbsolute(p) && p.includes(path.sep) && folder !== undefined && folder.uri.scheme === "file") {
    p = path.join(folder.uri.fsPath, p);
  }
  return p;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The server binary: aidiag.serverPath, else `aidiag` on PATH; or what to set when neither. */
function findServer(output: vscode.OutputChannel): string | { problem: string } {
  const configured = vscode.workspace.getConfiguration("aidiag").get<string>("serverPath", "").trim();
  if (configured !== "") {
    const file = expandPath(configured);
    if (isExecutable(file)) {
      return file;
    }
    if (!file.includes(path.sep)) {
      const found = searchPath(file);
      if (found !== undefined) {
        return found;
      }
    }
    return {
      problem: `aidiag: the server binary "${file}" (setting aidiag.serverPath) does not exist or is not executable. Set aidiag.serverPath to the full path of the aidiag binary (e.g. /path/to/aidiag/target/release/aidiag).`,
    };
  }
  const found = searchPath(process.platform === "win32" ? "aidiag.exe" : "aidiag");
  if (found !== undefined) {
    return found;
  }
  output.appendLine(`PATH searched: ${process.env.PATH ?? ""}`);
  return {
    problem:
      "aidiag: the server binary was not found: `aidiag` is not on PATH. Set aidiag.serverPath to the full path of the aidiag binary (build it with `cargo build --release`), or put it on PATH and reload the window.",
  };
}

function searchPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "") {
      const candidate = path.join(dir, name);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

const RESTART_SETTINGS = [
  "aidiag.serverPath",
  "aidiag.modelPath",
  "aidiag.tokenizerPath",
  "aidiag.useModel",
  "aidiag.modelExplanations",
  "aidiag.modelFixes",
  "aidiag.modelVerdicts",
  "aidiag.modelReview",
];

let extension: Extension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<AidiagApi> {
  const ext = new Extension(context);
  extension = ext;
  context.subscriptions.push(
    ext,
    vscode.commands.registerCommand("aidiag.restartServer", () => ext.restart()),
    vscode.commands.registerCommand("aidiag.showOutput", () => ext.showOutput()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      // The server loads the model once, when it starts, so the model settings need a restart
      // too (the others reach the running server as workspace/didChangeConfiguration).
      if (RESTART_SETTINGS.some((key) => event.affectsConfiguration(key))) {
        void ext.restart();
        return;
      }
      if (event.affectsConfiguration("aidiag.minimumSeverity")) {
        ext.refilter();
      }
      if (event.affectsConfiguration("aidiag")) {
        ext.render();
      }
    }),
  );
  // Not awaited: activation must not wait for the server (the status bar says how it goes).
  void ext.start();
  return ext;
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}
