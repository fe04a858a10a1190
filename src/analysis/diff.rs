//! What a change does to the findings: the functions it touches, checked before and after, and
//! the findings that appear or go away. Findings are matched by function name, rule and message
//! without its line numbers (the resource, lock or callee it names), never by line: code that
//! only moves, or is re-indented, changes nothing. A variable renamed everywhere in a function
//! keeps its findings.

use std::collections::HashMap;

use tree_sitter::Node;

use super::finding::{Finding, Severity};
use super::functions::{function_nodes, FunctionIndex};
use super::rules::{self, CheckOptions};
use super::syntax;
use crate::analysis::syntax::Fields as _;

/// The findings a change introduces and those it removes, in one file.
#[derive(Debug, Default)]
pub struct FileChange {
    /// Findings present after and absent before, in the new text's offsets.
    pub introduced: Vec<Finding>,
    /// Findings present before and absent after, in the old text's offsets.
    pub fixed: Vec<Finding>,
    /// Functions added or modified (not only moved or re-indented).
    pub touched: usize,
}

impl FileChange {
    /// Whether the change introduces something at warning or above.
    pub fn introduces_warnings(&self) -> bool {
        self.introduced
            .iter()
            .any(|f| f.severity >= Severity::Warning)
    }
}

/// The tokens of a function (comments out), for telling a rename from an edit.
fn tokens<'a>(node: Node, text: &'a str) -> Vec<(&'a str, bool)> {
    let mut out = Vec::new();
    let mut cursor = node.walk();
    loop {
        let node = cursor.node();
        if node.kind_name() != "comment" && node.child_count() == 0 {
            out.push((syntax::text(node, text), node.kind_name() == "identifier"));
        }
        if node.kind_name() != "comment" && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return out;
            }
        }
    }
}

/// When `new` is `old` with some identifiers renamed one to one (and nothing else changed),
/// the renaming.
fn renaming(old: &[(&str, bool)], new: &[(&str, bool)]) -> Option<HashMap<String, String>> {
    if old.len() != new.len() {
        return None;
    }
    let mut forward: HashMap<&str, &str> = HashMap::new();
    let mut backward: HashMap<&str, &str> = HashMap::new();
    for (&(a, a_ident), &(b, b_ident)) in old.iter().zip(new) {
        if a == b && a_ident == b_ident {
            if forward.get(a).is_some_and(|&to| to != b) {
                return None;
            }
            continue;
        }
        if !(a_ident && b_ident) {
            return None;
        }
        if *forward.entry(a).or_insert(b) != b || *backward.entry(b).or_insert(a) != a {
            return None;
        }
    }
    Some(
        forward
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
    )
}

/// A finding's identity across versions: rule and message without line numbers.
fn key(finding: &Finding) -> (String, String) {
    (finding.rule.to_owned(), finding.message.skeleton())
}

/// Renames the backquoted names of a message skeleton.
fn renamed(skeleton: &str, names: &HashMap<String, String>) -> String {
    let mut out = skeleton.to_owned();
    for (from, to) in names {
        out = out.replace(&format!("`{from}`"), &format!("`{to}`"));
        out = out.replace(&format!("`{from}->"), &format!("`{to}->"));
        out = out.replace(&format!("&{from}->"), &format!("&{to}->"));
    }
    out
}

/// The findings of a version of a file, as (function name, rule, message without line numbers):
/// what an editor compares the current findings with (`present_before`).
pub fn baseline(text: &str) -> Vec<(String, String, String)> {
    let parse = syntax::parse(text, None);
    let index = FunctionIndex::build(&parse.tree, text);
    function_nodes(&parse.tree)
        .into_iter()
        .zip(index.functions())
        .flat_map(|(node, function)| {
            rules::check_function(node, text, CheckOptions::default())
                .into_iter()
                .map(|f| {
                    let (rule, skeleton) = key(&f);
                    (function.name.clone(), rule, skeleton)
                })
        })
        .collect()
}

/// Whether `finding`, in the function named `function`, is one of `baseline`'s; a match is
/// taken out, so two equal findings now need two before.
pub fn present_before(
    baseline: &mut Vec<(String, String, String)>,
    function: &str,
    finding: &Finding,
) -> bool {
    let (rule, skeleton) = key(finding);
    match baseline
        .iter()
        .position(|(f, r, s)| f == function && *r == rule && *s == skeleton)
    {
        Some(at) => {
            baseline.swap_remove(at);
            true
        }
        None => false,
    }
}

/// Compares two versions of a file (`old` is `None` for a new file).
pub fn compare(old: Option<&str>, new: &str, options: CheckOptions) -> FileChange {
    let old = old.unwrap_or("");
    let (old_parse, new_parse) = (syntax::parse(old, None), syntax::parse(new, None));
    let old_index = FunctionIndex::build(&old_parse.tree, old);
    let new_index = FunctionIndex::build(&new_parse.tree, new);
    let old_nodes = function_nodes(&old_parse.tree);
    let new_nodes = function_nodes(&new_parse.tree);
    let mut old_by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, function) in old_index.functions().iter().enumerate() {
        old_by_name.entry(&function.name).or_default().push(i);
    }
    let mut change = FileChange::default();
    for (i, function) in new_index.functions().iter().enumerate() {
        let before = old_by_name
            .get(function.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        // Moved or re-indented: the same normalized text under the same name.
        if before
            .iter()
            .any(|&j| old_index.functions()[j].hash == function.hash)
        {
            continue;
        }
        change.touched += 1;
        let after = rules::check_function(new_nodes[i], new, options);
        let mut old_findings: Vec<(Finding, usize)> = before
            .iter()
            .flat_map(|&j| {
                rules::check_function(old_nodes[j], old, CheckOptions::default())
                    .into_iter()
                    .map(move |f| (f, j))
            })
            .collect();
        let new_tokens = tokens(new_nodes[i], new);
        let mut introduced = Vec::new();
        for finding in after {
            let wanted = key(&finding);
            // The same finding, or the same under a renaming of the function's identifiers.
            let same = old_findings.iter().position(|(old_finding, j)| {
                let had = key(old_finding);
                had == wanted
                    || (had.0 == wanted.0
                        && renaming(&tokens(old_nodes[*j], old), &new_tokens)
                            .is_some_and(|names| renamed(&had.1, &names) == wanted.1))
            });
            match same {
                Some(at) => {
                    old_findings.remove(at);
                }
                None => introduced.push(finding),
            }
        }
        change.introduced.extend(introduced);
        change
            .fixed
            .extend(old_findings.into_iter().map(|(f, _)| f));
    }
    change
        .introduced
        .sort_by_key(|f| (f.range.start, f.range.end));
    change.fixed.sort_by_key(|f| (f.range.start, f.range.end));
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: &str = "int set(struct foo *foo, int v)\n{\n\tmutex_lock(&foo->lock);\n\tif (v < 0) {\n\t\tmutex_unlock(&foo->lock);\n\t\treturn -EINVAL;\n\t}\n\tfoo->v = v;\n\tmutex_unlock(&foo->lock);\n\treturn 0;\n}\n";
    const OTHER: &str = "static int other(int x)\n{\n\treturn x + 1;\n}\n";
    const LEAKY: &str = "int probe(int x)\n{\n\tchar *buf = kmalloc(16, GFP_KERNEL);\n\n\tif (!buf)\n\t\treturn -ENOMEM;\n\tif (x)\n\t\treturn -EIO;\n\tkfree(buf);\n\treturn 0;\n}\n";

    fn compare_texts(old: &str, new: &str) -> FileChange {
        compare(Some(old), new, CheckOptions::default())
    }

    #[test]
    fn a_moved_or_reindented_function_is_not_touched() {
        let old = format!("{LEAKY}\n{OTHER}");
        let moved = format!("{OTHER}\n\n\n{}", LEAKY.replace('\t', "        "));
        let change = compare_texts(&old, &moved);
        assert_eq!(
            (change.touched, change.introduced.len(), change.fixed.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn an_error_path_without_the_unlock_is_introduced() {
        let new = LOCKED.replace(
            "\tfoo->v = v;\n",
            "\tif (v > 100)\n\t\treturn -ERANGE;\n\tfoo->v = v;\n",
        );
        let change = compare_texts(LOCKED, &new);
        assert_eq!(change.touched, 1);
        assert_eq!(change.introduced.len(), 1, "{:?}", change.introduced);
        assert_eq!(change.introduced[0].rule, "lock-imbalance");
        assert!(change.introduces_warnings());
    }

    #[test]
    fn a_fixed_leak_is_counted_and_nothing_is_introduced() {
        let fixed = LEAKY.replace(
            "\tif (x)\n\t\treturn -EIO;\n",
            "\tif (x) {\n\t\tkfree(buf);\n\t\treturn -EIO;\n\t}\n",
        );
        let change = compare_texts(LEAKY, &fixed);
        assert_eq!((change.introduced.len(), change.fixed.len()), (0, 1));
        assert_eq!(change.fixed[0].rule, "leak-on-error");
    }

    #[test]
    fn renaming_a_variable_or_editing_above_introduces_nothing() {
        let renamed = LEAKY.replace("buf", "data");
        assert_eq!(compare_texts(LEAKY, &renamed).introduced.len(), 0);
        // A line added above the leak moves it; an unrelated statement changes the function.
        let edited = LEAKY.replace("\tif (x)\n", "\tx = x * 2;\n\tif (x)\n");
        let change = compare_texts(LEAKY, &edited);
        assert_eq!(
            (change.touched, change.introduced.len(), change.fixed.len()),
            (1, 0, 0)
        );
    }

    #[test]
    fn a_new_file_introduces_what_it_has() {
        let change = compare(None, LEAKY, CheckOptions::default());
        assert_eq!((change.touched, change.introduced.len()), (1, 1));
    }
}
