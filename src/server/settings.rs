//! Server settings, read from `initializationOptions` and `workspace/didChangeConfiguration`
//! (under the `aidiag` key there). A wrong setting is reported, never silently defaulted.

use serde_json::Value;

use crate::model::judge::VerdictPolicy;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How long to wait after the last keystroke before checking changed functions.
    pub debounce_ms: u64,
    /// Whether the local model may be loaded at all.
    pub use_model: bool,
    /// Whether hovers show the model's explanation of a finding. Off by default: the default
    /// model (SmolLM2-135M) wrote wrong explanations when we tried it (it described a `memset`
    /// that is not in the code); the evaluation harness (issue 4) is to measure each model.
    pub model_explanations: bool,
    /// Whether code actions offer "fix with the local model" (drafted by the model, verified
    /// like a rule's fix, never preferred). Off by default for the same reason as explanations.
    pub model_fixes: bool,
    /// A GGUF file to use instead of the default model in the cache.
    pub model_path: Option<std::path::PathBuf>,
    /// A `tokenizer.json` for a GGUF file without a BPE tokenizer inside.
    pub tokenizer_path: Option<std::path::PathBuf>,
    /// What the model's verdicts may do to findings; `None` ("auto") takes the model's default
    /// (what models/policy.toml says the model file earned; annotate for a model not measured).
    pub model_verdicts: Option<VerdictPolicy>,
    /// Whether the model reviews changed functions for bugs outside the rules (findings at
    /// information severity); `None` ("auto"): as models/policy.toml says, on for others.
    pub model_review: Option<bool>,
    /// Findings that the HEAD version of the same function already has are shown as hints
    /// ("present before this change"), so the ones an edit adds stand out.
    pub baseline_head: bool,
    /// A server that runs the model instead of this process (`model.endpoint` and its settings
    /// from `.aidiag.toml`; the `endpoint` and `modelName` settings replace URL and name).
    pub endpoint: Option<crate::model::remote::Endpoint>,
    /// `cache.shared` from `.aidiag.toml`: the result store a team shares.
    pub shared_cache: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            debounce_ms: 150,
            use_model: true,
            model_explanations: false,
            model_fixes: false,
            model_path: None,
            tokenizer_path: None,
            model_verdicts: None,
            model_review: None,
            baseline_head: false,
            endpoint: None,
            shared_cache: None,
        }
    }
}

impl Settings {
    /// Takes the project file's model settings (`.aidiag.toml`); editor settings applied after
    /// this override them.
    pub fn apply_project(&mut self, project: &crate::config::ProjectConfig) {
        if let Some(on) = project.model_enabled {
            self.use_model = on;
        }
        if let Some(path) = &project.model_path {
            self.model_path = Some(path.clone());
        }
        if let Some(path) = &project.tokenizer_path {
            self.tokenizer_path = Some(path.clone());
        }
        if let Some(policy) = project.verdicts {
            self.model_verdicts = Some(policy);
        }
        if let Some(on) = project.review {
            self.model_review = Some(on);
        }
        if let Some(on) = project.explanations {
            self.model_explanations = on;
        }
        if let Some(on) = project.fixes {
            self.model_fixes = on;
        }
        if let Some(endpoint) = &project.endpoint {
            self.endpoint = Some(endpoint.clone());
        }
        if let Some(dir) = &project.shared_cache {
            self.shared_cache = Some(dir.clone());
        }
    }

    /// Applies the settings found in `value` on top of `self`; returns one message per setting
    /// that was wrong (naming the setting and what it accepts).
    pub fn update(&mut self, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(object) = value.as_object() else {
            // Neovim sends an empty Lua table, which is encoded as `[]`, when no settings are
            // configured: that means "nothing", not a wrong setting.
            let empty_list = value.as_array().is_some_and(Vec::is_empty);
            if !value.is_null() && !empty_list {
                problems.push(format!("aidiag settings must be an object, got {value}"));
            }
            return problems;
        };
        for (key, v) in object {
            match key.as_str() {
                "debounceMs" => match v.as_u64().filter(|ms| *ms <= 10_000) {
                    Some(ms) => self.debounce_ms = ms,
                    None => problems.push(format!(
                        "setting aidiag.debounceMs must be a whole number of milliseconds from 0 to 10000, got {v}"
                    )),
                },
                "useModel" => match v.as_bool() {
                    Some(on) => self.use_model = on,
                    None => problems.push(format!("setting aidiag.useModel must be true or false, got {v}")),
                },
                "modelExplanations" => match v.as_bool() {
                    Some(on) => self.model_explanations = on,
                    None => problems.push(format!("setting aidiag.modelExplanations must be true or false, got {v}")),
                },
                "modelFixes" => match v.as_bool() {
                    Some(on) => self.model_fixes = on,
                    None => problems.push(format!("setting aidiag.modelFixes must be true or false, got {v}")),
                },
                "modelPath" => match v.as_str().filter(|p| !p.is_empty()) {
                    Some(path) => self.model_path = Some(path.into()),
                    None => problems.push(format!("setting aidiag.modelPath must be the path of a GGUF file, got {v}")),
                },
                "tokenizerPath" => match v.as_str().filter(|p| !p.is_empty()) {
                    Some(path) => self.tokenizer_path = Some(path.into()),
                    None => problems.push(format!("setting aidiag.tokenizerPath must be the path of a tokenizer.json file, got {v}")),
                },
                "modelVerdicts" => match v.as_str() {
                    Some("auto") => self.model_verdicts = None,
                    Some(text) if VerdictPolicy::parse(text).is_some() => {
                        self.model_verdicts = VerdictPolicy::parse(text)
                    }
                    _ => problems.push(format!(
                        "setting aidiag.modelVerdicts must be one of \"auto\", \"off\", \"annotate\", \"demote\", \"drop\", got {v}"
                    )),
                },
                "modelReview" => match v.as_str() {
                    Some("auto") => self.model_review = None,
                    Some("on") => self.model_review = Some(true),
                    Some("off") => self.model_review = Some(false),
                    _ => problems.push(format!(
                        "setting aidiag.modelReview must be one of \"auto\", \"on\", \"off\", got {v}"
                    )),
                },
                "baseline" => match v.as_str() {
                    Some("none") => self.baseline_head = false,
                    Some("HEAD") => self.baseline_head = true,
                    _ => problems.push(format!(
                        "setting aidiag.baseline must be \"none\" or \"HEAD\", got {v}"
                    )),
                },
                "endpoint" => match v.as_str() {
                    Some("") => self.endpoint = None,
                    Some(url) => {
                        let endpoint = self
                            .endpoint
                            .get_or_insert_with(|| crate::model::remote::Endpoint::new(String::new()));
                        endpoint.url = url.to_owned();
                    }
                    None => problems.push(format!(
                        "setting aidiag.endpoint must be the URL of an OpenAI-compatible server (\"\" for none), got {v}"
                    )),
                },
                "modelName" => match (v.as_str(), self.endpoint.as_mut()) {
                    (Some(name), Some(endpoint)) => {
                        endpoint.model = (!name.is_empty()).then(|| name.to_owned())
                    }
                    (Some(_), None) => problems.push(
                        "setting aidiag.modelName needs aidiag.endpoint (or model.endpoint in .aidiag.toml), given before it".to_owned(),
                    ),
                    (None, _) => problems.push(format!(
                        "setting aidiag.modelName must be the served model's name, got {v}"
                    )),
                },
                other => problems.push(format!(
                    "unknown setting aidiag.{other}; accepted settings: debounceMs, useModel, modelExplanations, modelFixes, modelPath, tokenizerPath, modelVerdicts, modelReview, baseline, endpoint, modelName"
                )),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_or_null_means_no_settings() {
        // What Neovim sends when the plugin was given no settings.
        let mut settings = Settings::default();
        assert!(settings.update(&serde_json::json!([])).is_empty());
        assert!(settings.update(&serde_json::Value::Null).is_empty());
        assert_eq!(settings.update(&serde_json::json!([1])).len(), 1);
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn wrong_values_are_reported_and_not_applied() {
        let mut settings = Settings::default();
        let problems = settings.update(&serde_json::json!({"debounceMs": "fast", "colour": 1}));
        assert_eq!(problems.len(), 2);
        assert!(problems
            .iter()
            .any(|p| p.contains("aidiag.debounceMs") && p.contains("0 to 10000")));
        assert!(problems
            .iter()
            .any(|p| p.contains("unknown setting aidiag.colour")));
        assert_eq!(settings, Settings::default());
        assert!(settings
            .update(&serde_json::json!({"debounceMs": 20}))
            .is_empty());
        assert_eq!(settings.debounce_ms, 20);
    }
}
