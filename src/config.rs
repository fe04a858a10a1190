//! The project file `.aidiag.toml`: model settings shared by everyone who works on a tree, read
//! by `aidiag check`/`eval` (from the first path's directory upwards) and by the server (from the
//! workspace root upwards). Command-line flags and editor settings override it.
//!
//! ```toml
//! [model]
//! enabled = true                  # false: rules only
//! path = "models/my-model.gguf"   # relative to this file's directory
//! tokenizer = "tokenizer.json"    # for GGUF files without a BPE tokenizer inside
//! verdicts = "annotate"           # off | annotate | demote | drop
//! review = false
//! explanations = false
//! fixes = false
//!
//! # A model served on the team's network instead of the local one (model issue: team scale)
//! endpoint = "https://gpu-box.lan:8080/v1"  # OpenAI-compatible: llama.cpp server, vLLM
//! name = "qwen2.5-coder-7b-instruct"        # the served model; default: the first it lists
//! api_key_env = "AIDIAG_API_KEY"            # or api_key_file = "/path/to/token"
//! allow_insecure = false                    # plain http to another machine only when true
//! timeout_s = 60
//!
//! [cache]
//! shared = "/srv/aidiag-cache"              # results shared by a team (a shared filesystem)
//! ```
//!
//! An unknown key or a wrong value is an error that names it; it is never ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::judge::VerdictPolicy;
use crate::model::remote::{Credential, Endpoint};

pub const FILE_NAME: &str = ".aidiag.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    cache: CacheSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheSection {
    shared: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    enabled: Option<bool>,
    path: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    verdicts: Option<String>,
    review: Option<bool>,
    explanations: Option<bool>,
    fixes: Option<bool>,
    endpoint: Option<String>,
    name: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    allow_insecure: Option<bool>,
    timeout_s: Option<u64>,
}

/// The model settings of a project file; `None` where the file says nothing. Paths are
/// absolute (resolved against the file's directory).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectConfig {
    pub file: Option<PathBuf>,
    pub model_enabled: Option<bool>,
    pub model_path: Option<PathBuf>,
    pub tokenizer_path: Option<PathBuf>,
    pub verdicts: Option<VerdictPolicy>,
    pub review: Option<bool>,
    pub explanations: Option<bool>,
    pub fixes: Option<bool>,
    /// `model.endpoint` and its neighbours: the model on a server.
    pub endpoint: Option<Endpoint>,
    /// `cache.shared`: the result store's directory, shared by a team.
    pub shared_cache: Option<PathBuf>,
}

/// The nearest `.aidiag.toml` in `start` or a directory above it.
pub fn find(start: &Path) -> Option<PathBuf> {
    let start = if start.is_file() {
        // `bad.c` in the working directory has the parent "".
        start
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    } else {
        start
    };
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|file| file.is_file())
}

/// Reads the project file at `path`; the error names the file and what is wrong.
pub fn read(path: &Path) -> Result<ProjectConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<ProjectConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let absolute = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
    let model = file.model;
    let verdicts = match model.verdicts.as_deref() {
        None => None,
        Some(text) => Some(VerdictPolicy::parse(text).ok_or_else(|| {
            format!(
                "{}: model.verdicts must be one of \"off\", \"annotate\", \"demote\", \"drop\", got \"{text}\"",
                path.display()
            )
        })?),
    };
    let here = path.display();
    let credential = match (model.api_key_env, model.api_key_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{here}: give model.api_key_env or model.api_key_file, not both"
            ))
        }
        (Some(name), None) => Some(Credential::Env(name)),
        (None, Some(file)) => Some(Credential::File(absolute(file))),
        (None, None) => None,
    };
    let endpoint = match model.endpoint {
        Some(url) => Some(Endpoint {
            url,
            model: model.name,
            credential,
            allow_insecure: model.allow_insecure.unwrap_or(false),
            timeout: model.timeout_s.map_or(
                crate::model::remote::DEFAULT_TIMEOUT,
                std::time::Duration::from_secs,
            ),
        }),
        None if model.name.is_some()
            || credential.is_some()
            || model.allow_insecure.is_some()
            || model.timeout_s.is_some() =>
        {
            return Err(format!(
                "{here}: model.name, api_key_env, api_key_file, allow_insecure and timeout_s are settings of model.endpoint, which is not set"
            ))
        }
        None => None,
    };
    if model.timeout_s == Some(0) {
        return Err(format!("{here}: model.timeout_s must be at least 1"));
    }
    Ok(ProjectConfig {
        file: Some(path.to_path_buf()),
        model_enabled: model.enabled,
        model_path: model.path.map(absolute),
        tokenizer_path: model.tokenizer.map(absolute),
        verdicts,
        review: model.review,
        explanations: model.explanations,
        fixes: model.fixes,
        endpoint,
        shared_cache: file.cache.shared.map(absolute),
    })
}

/// The project file for `start`, if any: `Ok(None)` when there is none.
pub fn load(start: &Path) -> Result<Option<ProjectConfig>, String> {
    find(start).map(|file| read(&file)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_file_and_wrong_keys_or_values_are_errors() {
        let path = Path::new("/proj/.aidiag.toml");
        let config = parse(
            "[model]\npath = \"m/x.gguf\"\ntokenizer = \"/abs/t.json\"\nverdicts = \"demote\"\nreview = true\n",
            path,
        )
        .unwrap();
        assert_eq!(config.model_path, Some(PathBuf::from("/proj/m/x.gguf")));
        assert_eq!(config.tokenizer_path, Some(PathBuf::from("/abs/t.json")));
        assert_eq!(config.verdicts, Some(VerdictPolicy::Demote));
        assert_eq!(config.review, Some(true));
        assert_eq!(config.explanations, None);

        let error = parse("[model]\nverdict = \"off\"\n", path).unwrap_err();
        assert!(error.contains("unknown field `verdict`"), "{error}");
        let error = parse("[model]\nverdicts = \"sometimes\"\n", path).unwrap_err();
        assert!(error.contains("model.verdicts must be one of"), "{error}");
        let error = parse("[model]\nreview = \"yes\"\n", path).unwrap_err();
        assert!(error.contains("/proj/.aidiag.toml"), "{error}");
        assert_eq!(parse("", path).unwrap().model_path, None);
    }

    #[test]
    fn an_endpoint_carries_its_settings_and_they_mean_nothing_without_it() {
        let path = Path::new("/proj/.aidiag.toml");
        let config = parse(
            "[model]\nendpoint = \"https://gpu/v1\"\nname = \"qwen\"\napi_key_file = \"token\"\ntimeout_s = 5\n[cache]\nshared = \"../team-cache\"\n",
            path,
        )
        .unwrap();
        let endpoint = config.endpoint.unwrap();
        assert_eq!(endpoint.url, "https://gpu/v1");
        assert_eq!(endpoint.model.as_deref(), Some("qwen"));
        assert_eq!(
            endpoint.credential,
            Some(Credential::File(PathBuf::from("/proj/token")))
        );
        assert_eq!(endpoint.timeout, std::time::Duration::from_secs(5));
        assert!(!endpoint.allow_insecure);
        assert_eq!(
            config.shared_cache,
            Some(PathBuf::from("/proj/../team-cache"))
        );

        let error = parse("[model]\nname = \"qwen\"\n", path).unwrap_err();
        assert!(
            error.contains("model.endpoint, which is not set"),
            "{error}"
        );
        let error = parse(
            "[model]\nendpoint = \"https://gpu/v1\"\napi_key_env = \"A\"\napi_key_file = \"b\"\n",
            path,
        )
        .unwrap_err();
        assert!(error.contains("not both"), "{error}");
        let error = parse(
            "[model]\nendpoint = \"https://gpu/v1\"\ntimeout_s = 0\n",
            path,
        )
        .unwrap_err();
        assert!(error.contains("at least 1"), "{error}");
        let error = parse("[cache]\nsharde = \"x\"\n", path).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }
}
