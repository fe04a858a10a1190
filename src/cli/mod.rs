//! The command line: `aidiag check` runs the analysis on files and prints findings like a
//! compiler, as JSON or as SARIF.

pub mod eval;
pub mod judgement;
pub mod model;
mod output;
pub mod review;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::{self, CheckOptions, Finding, Severity};

pub use output::Format;

/// Files larger than this are reported and skipped rather than analysed.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// One analysed file.
#[derive(Clone)]
pub struct FileReport {
    pub path: String,
    pub text: String,
    pub findings: Vec<Finding>,
}

/// What `aidiag check` was asked to do.
pub struct CheckSettings {
    pub format: Format,
    pub paths: Vec<PathBuf>,
    pub model: model::ModelOptions,
}

/// Runs `aidiag check` and returns the exit code: 0 when nothing at warning or above was
/// found, 1 when something was, 2 when a file could not be read (after reporting the rest).
pub fn check(settings: &CheckSettings, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let mut errors = Vec::new();
    let mut reports = Vec::new();
    let files = collect_files(&settings.paths, &mut errors);
    for (file, outcome) in files.iter().zip(check_files(&files, true)) {
        match outcome {
            Ok((report, warning)) => {
                if let Some(warning) = warning {
                    let _ = writeln!(stderr, "aidiag: warning: {}: {warning}", file.display());
                }
                reports.push(report);
            }
            Err(error) => errors.push(format!("{}: {error}", file.display())),
        }
    }
    for error in &errors {
        let _ = writeln!(stderr, "aidiag: error: {error}");
    }
    if let Some(run) = model::apply(&settings.model, &mut reports, stderr) {
        let _ = writeln!(
            stderr,
            "aidiag: the local model ({}) judged {} findings and reviewed {} functions ({} model findings; {} model calls; verdicts: {:?})",
            run.name, run.judged, run.reviewed, run.model_findings, run.calls, run.policy
        );
    }
    let written = output::write(settings.format, &reports, &errors, stdout);
    if let Err(error) = written {
        let _ = writeln!(stderr, "aidiag: error: cannot write the report: {error}");
        return 2;
    }
    let serious = reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity >= Severity::Warning);
    if !errors.is_empty() {
        2
    } else if serious {
        1
    } else {
        0
    }
}

type Outcome = Result<(FileReport, Option<String>), String>;

/// Reads and checks files on every core (with verified fixes when `fixes`); the outcomes come back in the order of `files`.
fn check_files(files: &[PathBuf], fixes: bool) -> Vec<Outcome> {
    on_every_core(files.iter().collect(), |file| {
        read_source(file).map(|(text, warning)| {
            let findings = analysis::check_text(&text, CheckOptions { fixes });
            (
                FileReport {
                    path: display_path(file),
                    text,
                    findings,
                },
                warning,
            )
        })
    })
    .into_iter()
    .map(|o| o.unwrap_or_else(|| Err("the worker checking this file stopped".to_owned())))
    .collect()
}

/// `f` of each item, on every core, on threads with the analysis stack; the results in the
/// order of `items` (`None` where a worker could not run).
pub(crate) fn on_every_core<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<Option<R>> {
    use std::sync::Mutex;
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(slots.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let worker = std::thread::Builder::new()
                .stack_size(crate::analysis::rules::ANALYSIS_STACK_BYTES);
            let _ = worker.spawn_scoped(scope, || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                let item = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                let result = item.map(&f);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = result;
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

pub(crate) fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// Expands directories into their C files (`.c`, `.h`), sorted; files named directly are kept
/// whatever their extension.
fn collect_files(paths: &[PathBuf], errors: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(path)
                .into_iter()
                .filter_map(|entry| match entry {
                    Ok(entry) => Some(entry),
                    Err(error) => {
                        errors.push(format!("{}: {error}", path.display()));
                        None
                    }
                })
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "h")))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            errors.push(format!("{}: no such file or directory", path.display()));
        }
    }
    files
}

/// Reads a C file. Invalid UTF-8 is replaced (with a warning), so one odd byte in a comment
/// does not stop the analysis.
pub(crate) fn read_source(path: &Path) -> Result<(String, Option<String>), String> {
    use std::io::Read;
    let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        // Opening a FIFO would wait for a writer; a device can be endless.
        return Err("not a regular file (a FIFO, socket or device); skipped".to_owned());
    }
    let too_big = |size: u64| {
        format!("file is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit; skipped")
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_big(metadata.len()));
    }
    // The limit holds whatever `stat` said (files in /proc, files growing while read).
    // Sized from `stat` (most files are what it says), so the text is not held at up to twice
    // its size.
    let mut bytes = Vec::with_capacity(metadata.len() as usize + 1);
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    bytes.shrink_to_fit();
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "file is more than the {MAX_FILE_BYTES}-byte limit (it grew while read, or its size is not known); skipped"
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, None)),
        Err(error) => {
            let at = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok((
                text,
                Some(format!(
                    "not valid UTF-8 (first bad byte at line {line}); bad bytes were replaced with U+FFFD, so columns after them on those lines may be off"
                )),
            ))
        }
    }
}
