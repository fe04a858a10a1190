//! A model served on the team's own network by an OpenAI-compatible server (llama.cpp's
//! `llama-server`, llama-cpp-python's server, vLLM), used instead of the in-process engine for
//! verdicts, reviews, explanations and drafts, with the same prompts.
//!
//! What goes over the wire: the prompt (the function's code, the finding's message and
//! evidence, in the same ChatML text the local model gets) to `POST <url>/completions`, and
//! nothing else. Constrained answers (`choose`) ask for one token with its `logprobs` and sum the
//! probability of the tokens that start each choice, as the local sampler does; the answer
//! carries that probability. Generation is greedy (`temperature` 0) with the prompt's stop string.
//!
//! Failure is bounded: every request has a timeout, connection errors and 5xx/429 answers are
//! retried twice with backoff, and a breaker stops asking once the server is unreachable, refuses
//! the credentials, or fails three times in a row (for `BREAKER_OPEN`), so the rules go on
//! without waiting. The first time it opens, `Breaker::notice` gives the one message to show.
//! Credentials come from an environment variable or a file; they are sent as a bearer token and
//! never logged or stored (`Secret` prints as `***`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where the server is and how to talk to it (`model.endpoint` and its neighbours in
/// `.aidiag.toml`, `--endpoint`, the editor's `endpoint`).
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// The API base, e.g. `http://gpu-box:8080/v1`; `/completions` and `/models` are under it.
    pub url: String,
    /// The served model's name (`model` in each request); `None`: the first one `/models` lists.
    pub model: Option<String>,
    /// Where the bearer token is; `None`: no `Authorization` header.
    pub credential: Option<Credential>,
    /// Plain `http` to a host other than this machine's loopback only when true.
    pub allow_insecure: bool,
    /// The longest a request may take (the answer included).
    pub timeout: Duration,
}

impl Endpoint {
    /// A server at `url` with the defaults: the first model it lists, no token, https or
    /// loopback only, `DEFAULT_TIMEOUT`.
    pub fn new(url: String) -> Endpoint {
        Endpoint {
            url,
            model: None,
            credential: None,
            allow_insecure: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Where the token is read from. The token itself is never part of a configuration value.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    /// An environment variable's name.
    Env(String),
    /// A file whose first line is the token.
    File(PathBuf),
}

/// The default request timeout: a verdict is one token, but a long explanation on a busy
/// server takes a while.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting (and the first probe) may take: with the server down, checks go on with
/// the rules within this.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// The whole first probe (`GET /models`): under two seconds, the most a check waits for a
/// server that is down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1800);
/// Retries after the first attempt, for connection errors and 5xx/429 answers.
const RETRIES: u32 = 2;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Consecutive failures (timeouts, server errors) that open the breaker.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker refuses requests before one is tried again.
pub const BREAKER_OPEN: Duration = Duration::from_secs(30);
/// How many likeliest first tokens `choose` asks for (vLLM's default limit is 20).
const TOP_LOGPROBS: u32 = 20;

/// A bearer token; never printed.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The breaker is open: not asked.
    Open,
    /// No connection (refused, no route, DNS).
    Unreachable(String),
    /// No answer within the timeout.
    Timeout,
    /// 401 or 403: the credentials were refused.
    Refused(u16),
    /// Any other non-success status, with the start of the body.
    Status(u16, String),
    /// An answer that is not what an OpenAI-compatible server sends.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Open => write!(f, "not asked: the server failed recently"),
            Failure::Unreachable(e) => write!(f, "cannot connect: {e}"),
            Failure::Timeout => write!(f, "no answer within the timeout"),
            Failure::Refused(code) => write!(
                f,
                "the server refused the credentials ({code}); check the token named by model.api_key_env or model.api_key_file"
            ),
            Failure::Status(code, body) => write!(f, "the server answered {code}: {body}"),
            Failure::Protocol(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            Failure::Status(code, _) => *code == 429 || *code >= 500,
            _ => false,
        }
    }
}

/// Counts failures and stops requests for a while when the server is gone.
#[derive(Default)]
pub struct Breaker {
    consecutive: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// Why it first opened; handed out once by `notice`.
    reason: Mutex<Option<String>>,
    noticed: AtomicBool,
}

impl Breaker {
    fn check(&self) -> Result<(), Failure> {
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        match *open {
            Some(until) if Instant::now() < until => Err(Failure::Open),
            Some(_) => {
                // Half open: this request is the probe; failing it opens the breaker again.
                *open = None;
                self.consecutive
                    .store(FAILURES_TO_OPEN - 1, Ordering::Relaxed);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn failure(&self, failure: &Failure) {
        let count = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let fatal = matches!(failure, Failure::Unreachable(_) | Failure::Refused(_));
        if fatal || count >= FAILURES_TO_OPEN {
            *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + BREAKER_OPEN);
            let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if reason.is_none() {
                *reason = Some(failure.to_string());
            }
        }
    }

    /// Whether requests are refused now.
    pub fn is_open(&self) -> bool {
        self.open_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// The reason the breaker opened, the first time it is asked after it opened; `None` before
    /// and ever after, so the user is told once.
    pub fn notice(&self) -> Option<String> {
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        (!self.noticed.swap(true, Ordering::Relaxed)).then_some(reason)
    }
}

/// A connected server and the model it serves.
pub struct Remote {
    client: reqwest::Client,
    /// The API base without a trailing slash.
    base: String,
    /// The served model's name: in every request, in the notes, and in every cache key.
    pub name: String,
    secret: Option<Secret>,
    timeout: Duration,
    pub breaker: Breaker,
    /// Requests sent (retries included), for tests and logs.
    pub requests: AtomicU64,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .field("name", &self.name)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// Whether plain `http` to `url` keeps the code on this machine: a loopback address or
/// `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Reads the token a credential names; the error never contains it.
fn read_secret(credential: &Credential) -> Result<Secret, String> {
    let token = match credential {
        Credential::Env(name) => std::env::var(name).map_err(|_| {
            format!("the environment variable {name} (model.api_key_env) is not set")
        })?,
        Credential::File(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                format!(
                    "cannot read the token file {} (model.api_key_file): {e}",
                    path.display()
                )
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err("the configured token is empty".to_owned());
    }
    Ok(Secret(token))
}

impl Remote {
    /// Checks the configuration, reads the token and asks the server which models it serves
    /// (`GET <url>/models`, within `CONNECT_TIMEOUT`), so that a wrong URL, a server that is
    /// down or refused credentials are one clear error at start.
    pub async fn connect(endpoint: &Endpoint) -> Result<Remote, String> {
        let url = reqwest::Url::parse(endpoint.url.trim_end_matches('/'))
            .map_err(|e| format!("model.endpoint {:?} is not a URL: {e}", endpoint.url))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) || endpoint.allow_insecure => {}
            "http" => {
                return Err(format!(
                    "model.endpoint {url} is plain http to another machine: the code would cross the network unencrypted; use https, or set model.allow_insecure = true on a network you trust"
                ))
            }
            other => return Err(format!("model.endpoint {url}: unsupported scheme {other}")),
        }
        let secret = endpoint.credential.as_ref().map(read_secret).transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot start an HTTP client: {e}"))?;
        let mut remote = Remote {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            name: endpoint.model.clone().unwrap_or_default(),
            secret,
            timeout: endpoint.timeout,
            breaker: Breaker::default(),
            requests: AtomicU64::new(0),
        };
        let models = remote
            .send(reqwest::Method::GET, "models", None, PROBE_TIMEOUT)
            .await
            .map_err(|e| format!("the model server at {} is not usable: {e}", remote.base))?;
        let served: Vec<String> = models
            .get("data")
            .and_then(Value::as_array)
            .map(|data| {
                data.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if remote.name.is_empty() {
            remote.name = served.first().cloned().ok_or_else(|| {
                format!(
                    "the model server at {} lists no model; set model.name",
                    remote.base
                )
            })?;
        } else if !served.is_empty() && !served.contains(&remote.name) {
            return Err(format!(
                "the model server at {} does not serve model.name {:?}; it serves {}",
                remote.base,
                remote.name,
                served.join(", ")
            ));
        }
        Ok(remote)
    }

    /// The part of every cache key that names the model: the served model's name (so a team
    /// shares results whatever URL each member uses).
    pub fn key_hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(format!("remote\0{}", self.name).as_bytes())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .client
            .request(method, format!("{}/{path}", self.base))
            .timeout(timeout);
        if let Some(secret) = &self.secret {
            request = request.bearer_auth(&secret.0);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Timeout
            } else {
                // reqwest's message names the URL, never a header.
                Failure::Unreachable(e.without_url().to_string())
            }
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Protocol(e.without_url().to_string())
            }
        })?;
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| Failure::Protocol(e.to_string())),
            401 | 403 => Err(Failure::Refused(status)),
            _ => Err(Failure::Status(
                status,
                text.chars().take(200).collect::<String>(),
            )),
        }
    }

    /// One request through the breaker, retried with backoff where that can help.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.breaker.check()?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            match self
                .send(reqwest::Method::POST, path, Some(body), self.timeout)
                .await
            {
                Ok(answer) => {
                    self.breaker.success();
                    return Ok(answer);
                }
                Err(failure) if failure.retryable() && attempt < RETRIES => {
                    tracing::debug!("model server: {failure}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 4;
                    attempt += 1;
                }
                Err(failure) => {
                    // The user is told once, through `Breaker::notice`; each failure only here.
                    tracing::debug!("model server: {failure}");
                    self.breaker.failure(&failure);
                    return Err(failure);
                }
            }
        }
    }

    /// Picks one of `choices` as the answer to `prompt`: the probability of each choice is the
    /// sum over the first tokens the server lists that start it (`Yes`, ` yes`, `y`, ...),
    /// normalized among the choices. `Ok(None)` when no listed token starts a choice (the model
    /// abstains).
    pub async fn choose(
        &self,
        prompt: &str,
        choices: &[&str],
    ) -> Result<Option<(usize, f32)>, Failure> {
        let body = json!({
            "model": self.name,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": TOP_LOGPROBS,
        });
        let answer = self.post("completions", &body).await?;
        let top = first_token_logprobs(&answer).ok_or_else(|| {
            Failure::Protocol("no logprobs in the answer (does the server support them?)".into())
        })?;
        Ok(pick(&top, choices))
    }

    /// Greedy completion of `prompt`, at most `max_tokens`, ending before `stop`.
    pub async fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        stop: &str,
    ) -> Result<String, Failure> {
        let body = json!({
            "model": self.name,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "seed": 42,
            "stop": [stop],
        });
        let answer = self.post("completions", &body).await?;
        let text = answer
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::Protocol("no choices[0].text".into()))?;
        let text = text.find(stop).map_or(text, |at| &text[..at]);
        Ok(text.trim().to_owned())
    }
}

/// The likeliest first tokens with their log-probabilities, from either answer shape: the
/// completions API's `logprobs.top_logprobs[0]` (an object of token to logprob: OpenAI,
/// llama-cpp-python, vLLM) or `logprobs.content[0].top_logprobs` (a list of `{token, logprob}`:
/// llama.cpp's server).
fn first_token_logprobs(answer: &Value) -> Option<Vec<(String, f64)>> {
    let logprobs = answer.pointer("/choices/0/logprobs")?;
    if let Some(top) = logprobs
        .pointer("/top_logprobs/0")
        .and_then(Value::as_object)
    {
        return Some(
            top.iter()
                .filter_map(|(token, lp)| Some((token.clone(), lp.as_f64()?)))
                .collect(),
        );
    }
    let top = logprobs
        .pointer("/content/0/top_logprobs")
        .and_then(Value::as_array)?;
    Some(
        top.iter()
            .filter_map(|t| {
                Some((
                    t.get("token")?.as_str()?.to_owned(),
                    t.get("logprob")?.as_f64()?,
                ))
            })
            .collect(),
    )
}

/// The choice the listed tokens favour and its probability among the choices. A token counts
/// for a choice when, without leading blanks and in lower case, it is a non-empty start of that
/// choice and of no other.
fn pick(top: &[(String, f64)], choices: &[&str]) -> Option<(usize, f32)> {
    let mut mass = vec![0.0f64; choices.len()];
    for (token, logprob) in top {
        let token = token.trim_start().to_lowercase();
        if token.is_empty() || !logprob.is_finite() {
            continue;
        }
        let starts: Vec<usize> = choices
            .iter()
            .enumerate()
            .filter(|(_, c)| c.to_lowercase().starts_with(&token))
            .map(|(i, _)| i)
            .collect();
        if let [only] = starts[..] {
            mass[only] += logprob.exp();
        }
    }
    let total: f64 = mass.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let (best, p) = mass
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, p)| (i, *p))?;
    Some((best, (p / total) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_sum_the_tokens_that_start_them_in_either_answer_shape() {
        let legacy = json!({"choices": [{"text": "Yes", "logprobs": {"top_logprobs": [
            {"Yes": (0.6f64).ln(), " yes": (0.1f64).ln(), "No": (0.2f64).ln(), "The": (0.1f64).ln()}
        ]}}]});
        let top = first_token_logprobs(&legacy).unwrap();
        let (choice, p) = pick(&top, &["yes", "no"]).unwrap();
        assert_eq!(choice, 0);
        assert!((p - 0.7 / 0.9).abs() < 1e-6, "{p}");

        let llama_cpp = json!({"choices": [{"logprobs": {"content": [{"token": "no", "logprob": -0.1,
            "top_logprobs": [{"token": "no", "logprob": (0.8f64).ln()}, {"token": " Yes", "logprob": (0.2f64).ln()}]}]}}]});
        let (choice, p) = pick(&first_token_logprobs(&llama_cpp).unwrap(), &["yes", "no"]).unwrap();
        assert_eq!(choice, 1);
        assert!((p - 0.8).abs() < 1e-6, "{p}");

        // "n" starts both "no" and "none": it decides nothing.
        let top = vec![("n".to_owned(), -0.1), ("maybe".to_owned(), -0.2)];
        assert_eq!(pick(&top, &["no", "none"]), None);
        assert_eq!(
            first_token_logprobs(&json!({"choices": [{"text": "x"}]})),
            None
        );
    }

    #[test]
    fn the_token_never_shows_and_plain_http_leaves_the_machine_only_when_allowed() {
        assert_eq!(format!("{:?}", Secret("s3cret".into())), "***");
        for (url, loopback) in [
            ("http://127.0.0.1:8080/v1", true),
            ("http://localhost/v1", true),
            ("http://[::1]:80/v1", true),
            ("http://10.0.0.5/v1", false),
            ("http://gpu-box/v1", false),
        ] {
            assert_eq!(
                is_loopback(&reqwest::Url::parse(url).unwrap()),
                loopback,
                "{url}"
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let endpoint = Endpoint {
            url: "http://gpu-box:8080/v1".into(),
            model: None,
            credential: None,
            allow_insecure: false,
            timeout: DEFAULT_TIMEOUT,
        };
        let error = runtime.block_on(Remote::connect(&endpoint)).unwrap_err();
        assert!(error.contains("allow_insecure"), "{error}");
        let error = runtime
            .block_on(Remote::connect(&Endpoint {
                url: "ftp://x/v1".into(),
                ..endpoint.clone()
            }))
            .unwrap_err();
        assert!(error.contains("unsupported scheme"), "{error}");
        std::env::remove_var("AIDIAG_TEST_NO_SUCH_TOKEN");
        let error = runtime
            .block_on(Remote::connect(&Endpoint {
                url: "https://gpu-box/v1".into(),
                credential: Some(Credential::Env("AIDIAG_TEST_NO_SUCH_TOKEN".into())),
                ..endpoint
            }))
            .unwrap_err();
        assert!(error.contains("AIDIAG_TEST_NO_SUCH_TOKEN"), "{error}");
    }

    #[test]
    fn the_breaker_opens_at_once_on_an_unreachable_server_and_after_three_other_failures() {
        let breaker = Breaker::default();
        breaker.failure(&Failure::Timeout);
        breaker.failure(&Failure::Status(500, String::new()));
        assert!(!breaker.is_open());
        assert_eq!(breaker.notice(), None);
        breaker.failure(&Failure::Timeout);
        assert!(breaker.is_open());
        assert_eq!(breaker.check(), Err(Failure::Open));
        assert_eq!(
            breaker.notice().as_deref(),
            Some("no answer within the timeout")
        );
        assert_eq!(breaker.notice(), None, "told once");

        let breaker = Breaker::default();
        breaker.failure(&Failure::Unreachable("refused".into()));
        assert!(breaker.is_open());
        let breaker = Breaker::default();
        breaker.failure(&Failure::Refused(401));
        assert!(breaker.is_open());
        assert!(breaker.notice().unwrap().contains("401"));
    }
}
