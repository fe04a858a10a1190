//! Fix verification: a fix is offered only if the edited function parses without new syntax
//! errors, and checking it again makes its finding go away without raising another.

use tree_sitter::Node;

use super::finding::{ByteRange, Finding, Fix};
use super::functions::function_nodes;
use super::rules::{self, CheckOptions};
use super::syntax::{self, Fields as _};

/// Checks fixes for one function. The unedited function is parsed and checked once, however
/// many fixes are verified against it.
pub struct Verifier<'a> {
    range: ByteRange,
    original: &'a str,
    /// The file's struct and union definitions, checked with the function: a rule may read a
    /// field's declared type there (`unsigned-compare` on `priv->irq`).
    types: String,
    /// What the file's functions do (`summary`), for the calls the function makes.
    summaries: std::rc::Rc<super::summary::LockSummaries>,
    before: std::cell::OnceCell<Option<Summary>>,
}

impl<'a> Verifier<'a> {
    pub fn new(function: Node, source: &'a str) -> Self {
        let range = ByteRange::of(function);
        Verifier {
            range,
            original: &source[range.start..range.end],
            types: type_definitions(function, source),
            summaries: super::summary::for_file(function, source),
            before: std::cell::OnceCell::new(),
        }
    }

    /// True when `fix` stays inside the function, the edited function parses without new syntax
    /// errors, fewer findings of `finding.rule` remain and no other finding appears.
    pub fn verify(&self, finding: &Finding, fix: &Fix) -> bool {
        let range = self.range;
        if fix.edits.is_empty()
            || fix
                .edits
                .iter()
                .any(|e| e.range.start < range.start || e.range.end > range.end)
        {
            return false;
        }
        let Some(edited) = apply(self.original, range.start, fix) else {
            return false;
        };
        let (Some(before), Some(after)) = (
            self.before.get_or_init(|| self.summary(self.original)),
            self.summary(&edited),
        ) else {
            return false;
        };
        let same_rule = |s: &Summary| s.findings.iter().filter(|f| f.rule == finding.rule).count();
        let other_rules =
            |s: &Summary| s.findings.iter().filter(|f| f.rule != finding.rule).count();
        after.errors <= before.errors
            && same_rule(&after) < same_rule(before)
            && other_rules(&after) <= other_rules(before)
    }
}

/// Applies the edits of `fix` (document offsets) to `text`, which starts at document offset `base`.
pub fn apply(text: &str, base: usize, fix: &Fix) -> Option<String> {
    let mut edits: Vec<_> = fix.edits.iter().collect();
    edits.sort_by_key(|e| std::cmp::Reverse((e.range.start, e.range.end)));
    let mut out = text.to_owned();
    let mut limit = usize::MAX;
    for edit in edits {
        let (start, end) = (edit.range.start - base, edit.range.end - base);
        if end > limit || !out.is_char_boundary(start) || !out.is_char_boundary(end) {
            return None;
        }
        out.replace_range(start..end, &edit.text);
        limit = start;
    }
    Some(out)
}

struct Summary {
    errors: usize,
    findings: Vec<Finding>,
}

impl Verifier<'_> {
    /// Parses a function after the file's type definitions and checks it with the file's
    /// summaries.
    fn summary(&self, function: &str) -> Option<Summary> {
        super::summary::with_pinned(self.summaries.clone(), || summary(&self.types, function))
    }
}

/// Parses a function after `types` and checks it.
fn summary(types: &str, function: &str) -> Option<Summary> {
    let text = format!("{types}{function}");
    let parse = syntax::parse(&text, None);
    let nodes = function_nodes(&parse.tree);
    let function = nodes.first()?;
    Some(Summary {
        errors: parse.errors,
        findings: rules::check_function(*function, &text, CheckOptions { fixes: false }),
    })
}

/// The text of the struct and union definitions at the top of `function`'s file, each on its
/// own lines (`struct foo { ... };`). Tables and other functions are left out: they are large,
/// and no rule reads them.
fn type_definitions(function: Node, source: &str) -> String {
    let root = syntax::root(function);
    let mut out = String::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let specifier = match node.kind_name() {
            "struct_specifier" | "union_specifier" => Some(node),
            "declaration" | "type_definition" => node
                .field("type")
                .filter(|t| matches!(t.kind_name(), "struct_specifier" | "union_specifier")),
            kind if kind == "translation_unit" || super::functions::holds_definitions(kind) => {
                let mut cursor = node.walk();
                let children: Vec<Node> = node.named_children(&mut cursor).collect();
                stack.extend(children.into_iter().rev());
                None
            }
            _ => None,
        };
        if specifier.is_some_and(|s| s.field("body").is_some()) {
            out.push_str(syntax::text(node, source));
            if !out.ends_with(';') {
                out.push(';');
            }
            out.push('\n');
        }
    }
    out
}
