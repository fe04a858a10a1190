//! The local model's speed on this machine: load time, time to first token for an explanation
//! prompt, decode tokens/s, and the time of one verdict (the judge prompt and its one constrained
//! token), as one JSON line (scripts/bench-model.sh puts it next to
//! llama.cpp on the same GGUF file).
//!
//! `cargo bench --bench model -- [--model PATH] [--runs N] [--tokens N] [--prompt-out FILE]`

use std::path::PathBuf;
use std::time::Instant;

use aidiag::model::{engine::Engine, explain, judge, FindingText};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let path = arg("--model").map(PathBuf::from).unwrap_or_else(|| {
        aidiag::model::resolve(None)
            .expect("no cache directory: set HOME or XDG_CACHE_HOME")
            .0
    });
    let runs: usize = arg("--runs").map_or(3, |r| r.parse().expect("--runs N"));
    let decode_tokens: usize = arg("--tokens").map_or(64, |r| r.parse().expect("--tokens N"));

    let started = Instant::now();
    let engine = Engine::load(&path).await.unwrap_or_else(|e| panic!("{e}"));
    let load_s = started.elapsed().as_secs_f64();

    let function = "static int demo_probe(struct device *dev)\n{\n\tstruct demo *d;\n\tchar *buf;\n\n\tbuf = kmalloc(64, GFP_KERNEL);\n\tif (!buf)\n\t\treturn -ENOMEM;\n\td = kzalloc(sizeof(*d), GFP_KERNEL);\n\tif (!d)\n\t\treturn -ENOMEM;\n\td->buf = buf;\n\tdev_set_drvdata(dev, d);\n\treturn 0;\n}";
    let finding = FindingText {
        rule: "leak-on-error",
        message: "`buf` allocated at line 6 is not freed on the error return at line 11".to_owned(),
        evidence: vec!["line 6: `buf` is allocated here".to_owned()],
        function: function.to_owned(),
        context: String::new(),
    };
    let prompt = explain::prompt(&finding);
    let prompt_tokens = engine.token_count(&prompt);
    // The same prompt for the other engine in scripts/bench-model.sh.
    if let Some(file) = arg("--prompt-out") {
        std::fs::write(&file, &prompt).expect("write --prompt-out");
    }

    let (mut first, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let mut first_at = None;
        let mut count = 0;
        engine
            .stream(&prompt, |_| {
                count += 1;
                first_at.get_or_insert_with(Instant::now);
                count < decode_tokens
            })
            .await;
        let end = Instant::now();
        let first_at = first_at.expect("the model produced no token");
        first.push((first_at - started).as_secs_f64());
        if count > 1 {
            decode.push((count - 1) as f64 / (end - first_at).as_secs_f64());
        }
    }
    // A verdict on a function not judged before: the judge prompt for the finding, answered by
    // one constrained token, as `ModelService::verdict` asks it without its cache. The system
    // turn is computed once, in the first run, and continued in the others; each run renames
    // the function in its first line, so that nothing after the system turn is kept from the
    // run before (an edit further down would be continued from the lines above it).
    let (system, rest) = judge::prompt_parts(&finding);
    let verdict_tokens = engine.token_count(&(system.to_owned() + &rest));
    let mut verdict = Vec::new();
    for run in 0..runs {
        let mut renamed = finding.clone();
        renamed.function = function.replace("demo_probe", &format!("demo{run}_probe"));
        let (_, rest) = judge::prompt_parts(&renamed);
        let started = Instant::now();
        let answer = engine.choose(system, &rest, &judge::CHOICES).await;
        verdict.push(started.elapsed().as_secs_f64());
        assert!(answer.is_some(), "the model gave no verdict");
    }
    println!(
        "{{\"engine\": \"aidiag (kalosm-llama 0.4.4, candle 0.8.4)\", \"model\": \"{}\", \"weights\": \"{}\", \"threads\": {}, \"load_s\": {load_s:.3}, \"prompt_tokens\": {prompt_tokens}, \"first_token_s\": {:.3}, \"prefill_tok_s\": {:.1}, \"decode_tok_s\": {:.1}, \"verdict_prompt_tokens\": {verdict_tokens}, \"verdict_s\": {:.3}}}",
        path.display(),
        engine.weights.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        median(&mut first),
        prompt_tokens as f64 / median(&mut first.clone()),
        if decode.is_empty() { 0.0 } else { median(&mut decode) },
        median(&mut verdict),
    );
}
