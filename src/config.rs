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
//! ```
//!
//! An unknown key or a wrong value is an error that names it; it is never ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::judge::VerdictPolicy;

pub const FILE_NAME: &str = ".aidiag.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    model: ModelSection,
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
}

/// The nearest `.aidiag.toml` in `start` or a directory above it.
pub fn find(start: &Path) -> Option<PathBuf> {
    let start = if start.is_file() {
        start.parent()?
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
    Ok(ProjectConfig {
        file: Some(path.to_path_buf()),
        model_enabled: model.enabled,
        model_path: model.path.map(absolute),
        tokenizer_path: model.tokenizer.map(absolute),
        verdicts,
        review: model.review,
        explanations: model.explanations,
        fixes: model.fixes,
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
}
