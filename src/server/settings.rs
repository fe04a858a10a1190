//! Server settings, read from `initializationOptions` and `workspace/didChangeConfiguration`
//! (under the `aidiag` key there). A wrong setting is reported, never silently defaulted.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How long to wait after the last keystroke before checking changed functions.
    pub debounce_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { debounce_ms: 150 }
    }
}

impl Settings {
    /// Applies the settings found in `value` on top of `self`; returns one message per setting
    /// that was wrong (naming the setting and what it accepts).
    pub fn update(&mut self, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(object) = value.as_object() else {
            if !value.is_null() {
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
                other => problems.push(format!("unknown setting aidiag.{other}; accepted settings: debounceMs")),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
