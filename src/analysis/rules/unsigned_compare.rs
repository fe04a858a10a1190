//! unsigned-compare: an unsigned value compared with 0 in a way that is always true or false.

use super::{declarations, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{prev_code_sibling, strip_parens};

pub const RULE: Rule = Rule {
    id: "unsigned-compare",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "An unsigned variable is compared `< 0` (always false) or `>= 0` (always true).",
    why: "An unsigned value is never negative. An error check such as `if (len < 0)` never fires, \
          so a negative error stored in it is taken as a huge length, and a loop that counts down \
          with `i >= 0` never ends.",
    how_to_fix: "Declare the variable with a signed type (int, long, ssize_t) when it can hold an \
                 error, or compare against the real limit.",
    query: include_str!("../../../queries/c/unsigned-compare.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    // A function tests the same locals again and again (`ret < 0`): each is looked up once.
    let mut locals = std::collections::HashMap::new();
    for m in &ctx.matches {
        let (Some(compare), Some(value)) = (m.get("compare"), m.get("value")) else {
            continue;
        };
        if explicitly_cast(value) {
            // `(s64)val < 0` converts first: a real test of the top bit, not an always-false one.
            continue;
        }
        let value = strip_parens(value);
        let name = ctx.text(value);
        let declared = match value.kind_name() {
            "identifier" => *locals
                .entry(name)
                .or_insert_with(|| declarations::declared(ctx.function, name, ctx.source)),
            // `priv->irq < 0` with `priv` a `struct rtc_priv *` whose definition in the file
            // says `unsigned int irq`.
            "field_expression" => declarations::field_declared(ctx.function, value, ctx.source),
            _ => None,
        };
        let Some(declared) = declared else {
            continue;
        };
        let type_text = ctx.text(declared.type_node);
        if declared.pointer || declared.array || !declarations::is_unsigned(type_text) {
            continue;
        }
        let op = compare.field("operator").map_or("", |o| ctx.text(o));
        let always = if matches!(op, "<" | ">") {
            "false"
        } else {
            "true"
        };
        // A warning when the code shows what the test was meant to catch: a loop that counts
        // down with `>= 0` never ends, and a value assigned from a call may be that call's
        // negative error code, now lost. Otherwise the test is dead defensive code (the value
        // comes from a parser, a field, a bit mask already range-checked): a hint.
        // A value decreased by the statement just before the test (`credits -= needed; if
        // (credits < 0)`) shows the test is meant to catch a wrap-around that cannot show.
        // With the upper bound tested beside it (`x < 0 || x >= n`, `x >= 0 && x < n`), a
        // negative value converted to unsigned is huge and fails the bound: nothing is lost.
        let loops = in_loop_condition(compare) && always == "true";
        let from_call = assigned_from_call(ctx, name, compare);
        let decreased = decreased_just_before(ctx, name, compare);
        let bounded = bounded_beside(ctx, compare, name);
        let severity = (bounded || !loops && !from_call && !decreased).then_some(Severity::Hint);
        out.push(Candidate {
            severity,
            range: ByteRange::of(compare),
            message: Message::new().text(format!(
                "`{name}` is unsigned (`{type_text}`), so `{}` is always {always}",
                ctx.text(compare)
            )),
            related: vec![Related {
                range: ByteRange::of(declared.declaration),
                message: Message::new().text(format!("`{name}` is declared here as `{type_text}`")),
            }],
            fixes: Vec::new(),
        });
    }
    out
}

/// True when `compare` is one test of a chain of `||` (or `&&`) whose other tests bound `name`
/// from above (`name >= n`, `name > n`; for `&&`, `name < n`, `name <= n`).
fn bounded_beside(ctx: &Context, compare: tree_sitter::Node, name: &str) -> bool {
    let logical = |n: tree_sitter::Node| {
        (n.kind_name() == "binary_expression")
            .then(|| n.field("operator").map(|o| ctx.text(o)))
            .flatten()
            .filter(|op| matches!(*op, "||" | "&&"))
    };
    // Up through parentheses to the outermost chain of one logical operator.
    let mut top = compare;
    let mut op = None;
    while let Some(parent) = top.parent() {
        if parent.kind_name() == "parenthesized_expression" {
            top = parent;
            continue;
        }
        match (logical(parent), op) {
            (Some(o), None) => op = Some(o),
            (Some(o), Some(p)) if o == p => {}
            _ => break,
        }
        top = parent;
    }
    let Some(op) = op else {
        return false;
    };
    let upper: &[&str] = if op == "||" {
        &[">=", ">"]
    } else {
        &["<", "<="]
    };
    let mirrored: &[&str] = if op == "||" {
        &["<=", "<"]
    } else {
        &[">", ">="]
    };
    let mut stack = vec![top];
    while let Some(n) = stack.pop() {
        let n = strip_parens(n);
        if logical(n) == Some(op) {
            stack.extend(n.field("left"));
            stack.extend(n.field("right"));
            continue;
        }
        if n.kind_name() != "binary_expression" || n.id() == compare.id() {
            continue;
        }
        let (Some(left), Some(right), Some(o)) = (
            n.field("left"),
            n.field("right"),
            n.field("operator").map(|o| ctx.text(o)),
        ) else {
            continue;
        };
        let names = |x: tree_sitter::Node| ctx.text(strip_parens(x)) == name;
        if names(left) && upper.contains(&o) || names(right) && mirrored.contains(&o) {
            return true;
        }
    }
    false
}

/// True when `value`, under any parentheses, is a cast.
fn explicitly_cast(mut value: tree_sitter::Node) -> bool {
    loop {
        match value.kind_name() {
            "cast_expression" => return true,
            "parenthesized_expression" => match value.named_child(0) {
                Some(inner) => value = inner,
                None => return false,
            },
            _ => return false,
        }
    }
}

/// True when `node` is (part of) the condition of a `for`, `while` or `do` loop.
fn in_loop_condition(node: tree_sitter::Node) -> bool {
    let mut child = node;
    while let Some(parent) = child.parent() {
        match parent.kind_name() {
            "for_statement" | "while_statement" | "do_statement" => {
                return parent
                    .field("condition")
                    .is_some_and(|c| c.id() == child.id());
            }
            "binary_expression" | "parenthesized_expression" | "unary_expression" => child = parent,
            _ => return false,
        }
    }
    false
}

/// True when the statement just before the one holding `compare` decreases `name`: `name -=
/// n;`, `name = name - n;`, `name--;`.
fn decreased_just_before(ctx: &Context, name: &str, compare: tree_sitter::Node) -> bool {
    let Some(statement) = ctx.statement_of(compare) else {
        return false;
    };
    let Some(expression) = prev_code_sibling(statement)
        .filter(|p| p.kind_name() == "expression_statement")
        .and_then(|p| p.named_child(0))
    else {
        return false;
    };
    let names = |n: tree_sitter::Node| ctx.text(strip_parens(n)) == name;
    match expression.kind_name() {
        "assignment_expression" => {
            let (Some(left), Some(op), Some(right)) = (
                expression.field("left"),
                expression.field("operator").map(|o| ctx.text(o)),
                expression.field("right"),
            ) else {
                return false;
            };
            let right = strip_parens(right);
            names(left)
                && (op == "-="
                    || op == "="
                        && right.kind_name() == "binary_expression"
                        && right.field("operator").is_some_and(|o| ctx.text(o) == "-")
                        && right.field("left").is_some_and(names))
        }
        "update_expression" => {
            expression.field("argument").is_some_and(names) && ctx.text(expression).contains("--")
        }
        _ => false,
    }
}

/// True when `name = f(...)` (or its initializer) comes before `before`: the value of a call,
/// which may be a negative error code.
fn assigned_from_call(ctx: &Context, name: &str, before: tree_sitter::Node) -> bool {
    let mut stack = vec![ctx.function];
    while let Some(node) = stack.pop() {
        if node.start_byte() >= before.start_byte() {
            continue;
        }
        let plain = node.kind_name() != "assignment_expression"
            || node.field("operator").is_some_and(|o| ctx.text(o) == "=");
        if let Some((target, value)) = crate::analysis::syntax::assignment(node).filter(|_| plain) {
            let value = {
                let mut v = value;
                while v.kind_name() == "parenthesized_expression" {
                    match v.named_child(0) {
                        Some(inner) => v = inner,
                        None => break,
                    }
                }
                v
            };
            if ctx.text(strip_parens(target)) == name && value.kind_name() == "call_expression" {
                return true;
            }
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    false
}
