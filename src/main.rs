//! The `aidiag` binary: `aidiag lsp` (or `--stdio`) serves LSP over stdio, `aidiag check` runs
//! the analysis on files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aidiag",
    version,
    about = "Local bug diagnostics for C code (Linux kernel first)"
)]
struct Cli {
    /// Serve LSP over stdio (what VS Code passes); the same as `aidiag lsp`.
    #[arg(long)]
    stdio: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Language Server Protocol over stdin/stdout.
    Lsp {
        /// Accepted for clients that pass it; stdio is the only transport.
        #[arg(long)]
        stdio: bool,
    },
    /// The local model.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Check C files and directories (recursively, *.c and *.h) and report findings.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: aidiag::cli::Format,
        /// Files or directories to check (with --diff: paths to limit the change to).
        #[arg(required_unless_present_any = ["diff", "patch"])]
        paths: Vec<PathBuf>,
        /// Report only what the change from this revision introduces (to the working tree, or
        /// to --to): the functions it touches, checked before and after. Rules only.
        #[arg(long, value_name = "REV", conflicts_with = "patch")]
        diff: Option<String>,
        /// With --diff: the revision the change goes to, instead of the working tree.
        #[arg(long, value_name = "REV", requires = "diff")]
        to: Option<String>,
        /// A patch series (git format-patch output or an mbox; - for stdin), applied one patch at
        /// a time on top of HEAD; per patch, what it introduces. Rules only.
        #[arg(long, value_name = "FILE")]
        patch: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Score the analysis on a labeled corpus (NAME.c + NAME.json per case): per-class hits,
    /// false alarms and clean cases flagged, precision and recall.
    Eval {
        /// The corpus directory.
        corpus: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: aidiag::cli::eval::EvalFormat,
        #[command(flatten)]
        model: ModelArgs,
        /// Score another tool's warnings from this JSON file ([{"file", "line", "message"}])
        /// instead of running aidiag.
        #[arg(long, requires = "name")]
        external: Option<PathBuf>,
        /// The name of the tool whose warnings --external holds.
        #[arg(long, requires = "external")]
        name: Option<String>,
        /// CORPUS is a judgement set (JSON Lines from scripts/judgement-set.py materialize):
        /// score the model's verdicts on it (AUC, what each policy keeps and drops).
        #[arg(long, conflicts_with = "external")]
        judge: bool,
        /// With --judge: what the model sees besides the function.
        #[arg(long, value_enum, default_value = "comment", requires = "judge")]
        context: aidiag::cli::judgement::Context,
        /// With --judge: what the verdict prompt asks.
        #[arg(long, value_enum, default_value = "report", requires = "judge")]
        question: aidiag::model::judge::Question,
    },
}

/// How `check` and `eval` use the model.
#[derive(clap::Args)]
struct ModelArgs {
    /// Rules only: do not load the model.
    #[arg(long)]
    no_model: bool,
    /// Neither read nor write stored model results (to time real model work).
    #[arg(long)]
    no_cache: bool,
    /// A GGUF model file to use instead of the default model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// What the model's verdicts may do: off, annotate (say it beside the finding), demote
    /// (a confident rejection becomes information) or drop. Default: what the model file
    /// earned in models/policy.toml (`aidiag model list`), annotate for a model not measured.
    #[arg(long, value_parser = parse_policy)]
    verdicts: Option<aidiag::model::judge::VerdictPolicy>,
    /// Whether the model reviews every function for bugs outside the rules (findings at
    /// information severity): on or off. Default: as models/policy.toml says, on for others.
    #[arg(long, value_parser = parse_on_off)]
    review: Option<bool>,
    /// An OpenAI-compatible server on your network (llama.cpp's server, vLLM) that runs the
    /// model instead of this process, e.g. http://127.0.0.1:8080/v1 (model.endpoint).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The served model to ask (model.name); default: the first the server lists.
    #[arg(long, value_name = "NAME")]
    model_name: Option<String>,
    /// Verdicts in flight at once, for a server (it batches them); the local model takes one
    /// at a time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
}

impl ModelArgs {
    /// The options, with what `.aidiag.toml` (found from `start` upwards) adds; a broken
    /// project file is an error (exit code 2), never ignored.
    fn options(
        self,
        start: &std::path::Path,
    ) -> Result<aidiag::cli::model::ModelOptions, ExitCode> {
        let options = aidiag::cli::model::ModelOptions {
            disabled: self.no_model,
            path: self.model,
            tokenizer: None,
            no_cache: self.no_cache,
            verdicts: self.verdicts,
            review: self.review,
            endpoint: self.endpoint.map(aidiag::model::remote::Endpoint::new),
            shared_cache: None,
            jobs: usize::from(self.jobs),
        };
        let mut options = match aidiag::config::load(start) {
            Ok(Some(project)) => options.with_project(&project),
            Ok(None) => options,
            Err(error) => {
                eprintln!("aidiag: error: {error}");
                return Err(ExitCode::from(2));
            }
        };
        if let Some(name) = self.model_name {
            match options.endpoint.as_mut() {
                Some(endpoint) => endpoint.model = Some(name),
                None => {
                    eprintln!("aidiag: error: --model-name needs --endpoint or model.endpoint in .aidiag.toml");
                    return Err(ExitCode::from(2));
                }
            }
        }
        Ok(options)
    }
}

#[derive(Subcommand)]
enum ModelCommand {
    /// List the models in the cache and those scripts/fetch-model.sh can fetch, with what each
    /// one's verdicts were measured to be worth and the policy that earned.
    List,
    /// Say which model is configured, where, its architecture, quantization and size.
    Info {
        /// A GGUF file to use instead of the default model in the cache.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

fn init_logging() {
    // Logs go to stderr, which editors capture; AIDIAG_LOG sets the level (default: warn).
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIDIAG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn main() -> ExitCode {
    // SAFETY: first thing, one thread, no tree-sitter call yet.
    unsafe { aidiag::allocator::use_for_tree_sitter() };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging();
    match cli.command {
        Some(Command::Check {
            format,
            paths,
            diff,
            to,
            patch,
            model,
        }) => {
            let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
            if let Some(base) = diff {
                let code = aidiag::cli::review::check_diff(
                    format,
                    &base,
                    to.as_deref(),
                    &paths,
                    &mut stdout,
                    &mut stderr,
                );
                return ExitCode::from(code as u8);
            }
            if let Some(series) = patch {
                let code =
                    aidiag::cli::review::check_patches(format, &series, &mut stdout, &mut stderr);
                return ExitCode::from(code as u8);
            }
            if format == aidiag::cli::Format::Reply {
                eprintln!("aidiag: error: --format reply is for --patch");
                return ExitCode::from(2);
            }
            let model = match model.options(&paths[0]) {
                Ok(model) => model,
                Err(code) => return code,
            };
            let settings = aidiag::cli::CheckSettings {
                format,
                paths,
                model,
            };
            // Not locked for the whole run: the model's thread logs to stderr (tracing), and a
            // lock held here while the model works would block it forever.
            let code =
                aidiag::cli::check(&settings, &mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(code as u8)
        }
        Some(Command::Eval {
            corpus,
            format,
            model,
            external,
            name,
            judge,
            context,
            question,
        }) => {
            let model = match model.options(&corpus) {
                Ok(model) => model,
                Err(code) => return code,
            };
            if judge {
                let code = aidiag::cli::judgement::run(
                    &corpus,
                    context,
                    question,
                    matches!(format, aidiag::cli::eval::EvalFormat::Json),
                    &model,
                    &mut std::io::stdout(),
                    &mut std::io::stderr(),
                );
                return ExitCode::from(code as u8);
            }
            let settings = aidiag::cli::eval::EvalSettings {
                corpus,
                format,
                external: name.zip(external),
                model,
            };
            // Unlocked, as for `check`.
            let code =
                aidiag::cli::eval::eval(&settings, &mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(code as u8)
        }
        Some(Command::Lsp { .. }) => serve(),
        Some(Command::Model {
            command: ModelCommand::List,
        }) => {
            print!("{}", aidiag::model::list());
            ExitCode::SUCCESS
        }
        Some(Command::Model {
            command: ModelCommand::Info { model },
        }) => {
            let Some((path, origin)) = aidiag::model::resolve(model.as_deref()) else {
                eprintln!("aidiag: error: no model given and neither XDG_CACHE_HOME nor HOME is set; pass --model PATH");
                return ExitCode::from(2);
            };
            match aidiag::model::describe(&path, origin) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("aidiag: error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        None if cli.stdio => serve(),
        None => {
            eprintln!(
                "aidiag: say what to do: `aidiag lsp` or `aidiag check PATH...` (see --help)"
            );
            ExitCode::from(2)
        }
    }
}

fn parse_policy(text: &str) -> Result<aidiag::model::judge::VerdictPolicy, String> {
    aidiag::model::judge::VerdictPolicy::parse(text)
        .ok_or_else(|| format!("`{text}` is not one of off, annotate, demote, drop"))
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{text}` is neither on nor off")),
    }
}

fn serve() -> ExitCode {
    match aidiag::server::run_stdio() {
        Ok(true) => ExitCode::SUCCESS,
        // LSP: `exit` without `shutdown` (or a vanished client) exits with code 1.
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("aidiag: error: {error:#}");
            ExitCode::from(1)
        }
    }
}
