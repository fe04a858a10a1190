//! Writes the hover explanation the server would show for chosen findings, for reading and
//! tallying by hand (docs/quality.md, "Explanations").
//!
//! `cargo run --release --example explain_tally -- MODEL.gguf FILE:LINE...`: for each
//! `FILE:LINE`, the warning the rules report on that line (1-based) of FILE, its explanation
//! as the hover renders it (the file's line numbers), and the seconds it took. Nothing is
//! cached, so each explanation is written afresh.

use aidiag::analysis::{check_text, functions, syntax, CheckOptions, Severity};
use aidiag::model::engine::Engine;
use aidiag::model::explain;
use aidiag::model::service::ModelService;
use aidiag::model::store::Store;
use aidiag::model::FindingText;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((model, targets)) = args.split_first() else {
        eprintln!("usage: explain_tally MODEL.gguf FILE:LINE...");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let engine = match runtime.block_on(Engine::load_with(Path::new(model), None)) {
        Ok(engine) => engine,
        Err(message) => {
            eprintln!("explain_tally: {message}");
            std::process::exit(1);
        }
    };
    let service = ModelService::new(engine, Store::new(None, 1));
    for (n, target) in targets.iter().enumerate() {
        let Some((path, line)) = target
            .rsplit_once(':')
            .and_then(|(p, l)| Some((p, l.parse::<usize>().ok()?)))
        else {
            eprintln!("explain_tally: {target}: not FILE:LINE");
            continue;
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => {
                eprintln!("explain_tally: {path}: {error}");
                continue;
            }
        };
        let lines = syntax::LineIndex::new(&text);
        let findings = check_text(&text, CheckOptions::default());
        let Some(finding) = findings
            .iter()
            .find(|f| f.severity >= Severity::Warning && lines.line(f.range.start) + 1 == line)
        else {
            println!("## {n}. {target}: no warning on this line\n");
            continue;
        };
        let parse = syntax::parse(&text, None);
        let index = functions::FunctionIndex::build(&parse.tree, text.as_str());
        let Some(function) = index.at(finding.range.start) else {
            continue;
        };
        let first_line = lines.line(function.range.start);
        let code = text[function.range.start..function.range.end].to_owned();
        let finding_text = FindingText::new(finding, code, first_line, &|o| lines.line(o));
        let started = std::time::Instant::now();
        let written =
            runtime.block_on(service.explanation(function.hash, &finding_text, &|| false));
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "## {n}. {target} [{}] {}\n",
            finding.rule,
            finding.message.render(&|o| lines.line(o))
        );
        match written {
            Some(written) => println!(
                "{}\n\n({seconds:.1} s)\n",
                explain::render(&written, first_line)
            ),
            None => println!("(no explanation)\n"),
        }
    }
}
