//! copy-user-return: the byte count of copy_from_user()/copy_to_user() used as an error code.

use super::{declarations, replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{callee_name, parent_outside_parens, strip_parens};

pub const RULE: Rule = Rule {
    id: "copy-user-return",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "The result of copy_from_user()/copy_to_user() is returned or compared with 0 as if it were an error code.",
    why: "These functions return the number of bytes that could not be copied: 0 on success, a \
          positive count on failure, never a negative errno. Returning the count hands a positive \
          number to a caller that expects 0 or -EFAULT, and `< 0` is never true.",
    how_to_fix: "Test the result for non-zero and return -EFAULT: \
                 `if (copy_from_user(dst, src, n)) return -EFAULT;`.",
    query: include_str!("../../../queries/c/copy-user-return.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    // A wrapper whose every return is a copy's count (or 0) hands its callers exactly what
    // copy_to_user() gives, and they test it for non-zero: that is its contract, not a bug.
    // A function that returns anything else (a length, an errno) mixes the two conventions.
    // Handlers whose result reaches user space (`long` ioctls, `ssize_t` reads and writes, any
    // function named for an ioctl) never pass a count through.
    let (return_type, _) = declarations::return_type(ctx.function, ctx.source);
    let handler = matches!(return_type, "long" | "ssize_t")
        || crate::analysis::functions::function_name(ctx.function)
            .is_some_and(|n| ctx.text(n).contains("ioctl"));
    let signed = declarations::returns_signed_int(ctx.function, ctx.source)
        && (handler || !passes_the_count_through(ctx));
    // A function named after the copy it wraps (`vhost_copy_to_user()` around
    // `__copy_to_user()`) states that it keeps the copy's contract: its callers read a count.
    let own_name = crate::analysis::functions::function_name(ctx.function)
        .map(|n| ctx.text(n))
        .unwrap_or("");
    for m in &ctx.matches {
        let (Some(call), Some(name)) = (m.get("call"), m.get("fn")) else {
            continue;
        };
        let name = ctx.text(name);
        let named_after =
            !handler && own_name.contains(name.trim_start_matches('_').trim_start_matches("raw_"));
        if let (Some(_), true, false) = (m.get("return"), signed, named_after) {
            out.push(Candidate {
 severity: None,
                range: ByteRange::of(call),
                message: Message::new().text(format!(
                    "{name}() returns the number of bytes not copied, not an error code; returning it gives the caller a positive count instead of -EFAULT"
                )),
                related: Vec::new(),
                fixes: vec![replace(
                    ByteRange::of(call),
                    format!("{} ? -EFAULT : 0", ctx.text(call)),
                    "Return -EFAULT when the copy fails",
                )],
            });
        } else if let Some(compare) = m.get("compare") {
            out.push(Candidate {
 severity: None,
                range: ByteRange::of(compare),
                message: Message::new().text(format!(
                    "{name}() never returns a negative value, so `< 0` is always false and a failed copy goes unnoticed"
                )),
                related: Vec::new(),
                fixes: vec![replace(ByteRange::of(compare), ctx.text(call), "Test the result for non-zero")],
            });
        } else if let (Some(assign), Some(var)) = (m.get("assign"), m.get("var")) {
            out.extend(later_misuse(ctx, assign, ctx.text(var), name, signed));
        }
    }
    out
}

/// Follows `var = copy_*_user(...)` to its next uses, up to the next assignment of `var`.
fn later_misuse(
    ctx: &Context,
    assign: tree_sitter::Node,
    var: &str,
    name: &str,
    signed: bool,
) -> Vec<Candidate> {
    // `count -= copy_to_user(...)` keeps the bytes that were copied: a short read, not a count
    // of failures.
    let plain = assign.kind_name() != "assignment_expression"
        || assign.field("operator").is_some_and(|o| ctx.text(o) == "=");
    if !plain {
        return Vec::new();
    }
    let mut uses = Vec::new();
    collect_identifiers(ctx, ctx.function, var, &mut uses);
    let mut out = Vec::new();
    for node in uses
        .into_iter()
        .filter(|n| n.start_byte() >= assign.end_byte())
    {
        let Some(parent) = parent_outside_parens(node) else {
            continue;
        };
        let assigned_again = parent.kind_name() == "assignment_expression"
            && parent.field("left").map(strip_parens).map(|l| l.id()) == Some(node.id());
        if assigned_again {
            break;
        }
        let evidence = vec![Related {
            range: ByteRange::of(assign),
            message: Message::new().text(format!(
                "`{var}` holds the byte count of {name}() from here"
            )),
        }];
        let prefix = Message::new()
            .text(format!("`{var}` holds the result of {name}() at "))
            .line_of(assign.start_byte());
        if parent.kind_name() == "return_statement"
            && signed
            && !guarded(ctx, var, assign, node)
            && !known_zero(ctx, var, assign, node)
        {
            out.push(Candidate {
 severity: None,
                range: ByteRange::of(node),
                message: prefix.text(", the number of bytes not copied; returning it gives the caller a positive count instead of -EFAULT"),
                related: evidence,
                fixes: vec![replace(ByteRange::of(node), format!("{var} ? -EFAULT : 0"), "Return -EFAULT when the copy failed")],
            });
        } else if parent.kind_name() == "binary_expression"
            && parent.field("operator").is_some_and(|o| ctx.text(o) == "<")
            && parent.field("right").is_some_and(|r| ctx.text(r) == "0")
        {
            out.push(Candidate {
                severity: None,
                range: ByteRange::of(parent),
                message: prefix.text(", which is never negative, so `< 0` is always false"),
                related: evidence,
                fixes: vec![replace(
                    ByteRange::of(parent),
                    var,
                    "Test the result for non-zero",
                )],
            });
        }
    }
    out
}

fn collect_identifiers<'t>(
    ctx: &Context<'t>,
    node: tree_sitter::Node<'t>,
    name: &str,
    out: &mut Vec<tree_sitter::Node<'t>>,
) {
    if node.kind_name() == "identifier" && ctx.text(node) == name {
        out.push(node);
        return;
    }
    if node.kind_name() == "call_expression" && callee_name(node, ctx.source) == Some(name) {
        return;
    }
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        collect_identifiers(ctx, child, name, out);
    }
}

const COPIES: &[&str] = &[
    "copy_from_user",
    "copy_to_user",
    "__copy_from_user",
    "__copy_to_user",
    "copy_in_user",
    "raw_copy_from_user",
    "raw_copy_to_user",
];

/// True when every `return` of the function returns 0, a copy call, or a local that only
/// ever holds a copy's result or 0.
fn passes_the_count_through(ctx: &Context) -> bool {
    let is_copy = |n: tree_sitter::Node| {
        callee_name(strip_parens(n), ctx.source).is_some_and(|c| COPIES.contains(&c))
    };
    let mut writes: Vec<(&str, bool)> = Vec::new();
    let mut returned = Vec::new();
    let mut stack = vec![ctx.function];
    while let Some(node) = stack.pop() {
        match node.kind_name() {
            "return_statement" => match node.named_child(0) {
                Some(value) => returned.push(strip_parens(value)),
                None => return false,
            },
            "assignment_expression" | "init_declarator" => {
                if let Some((target, value)) = crate::analysis::syntax::assignment(node) {
                    let ok = is_copy(value) || ctx.text(strip_parens(value)) == "0";
                    writes.push((ctx.text(strip_parens(target)), ok));
                }
            }
            _ => {}
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    returned.iter().all(|&value| {
        let text = ctx.text(value);
        text == "0"
            || is_copy(value)
            || (value.kind_name() == "identifier"
                && writes.iter().any(|(t, _)| *t == text)
                && writes.iter().filter(|(t, _)| *t == text).all(|(_, ok)| *ok))
    })
}

/// True when an `if` between `assign` and `use` tests `var` and `use` lies outside it: past
/// `if (ret) return -EFAULT;` the variable holds 0.
/// True when `used` sits in the branch of an `if` (after the copy) where `var` is 0: the
/// `else` of `if (var)`/`if (var != 0)`, or the body of `if (!var)`/`if (var == 0)`.
fn known_zero(
    ctx: &Context,
    var: &str,
    assign: tree_sitter::Node,
    used: tree_sitter::Node,
) -> bool {
    let mut child = used;
    while let Some(parent) = child.parent() {
        if parent.start_byte() < assign.end_byte() {
            return false;
        }
        if parent.kind_name() == "if_statement" {
            let branch = |field: &str| parent.field(field).is_some_and(|b| b.id() == child.id());
            let nonzero = parent
                .field("condition")
                .map(strip_parens)
                .and_then(|c| tests_nonzero(ctx, c, var));
            match nonzero {
                Some(true) if branch("alternative") => return true,
                Some(false) if branch("consequence") => return true,
                _ => {}
            }
        }
        child = parent;
    }
    false
}

/// Whether `condition` is true when `var` is non-zero (`var`, `var != 0`) or when it is zero
/// (`!var`, `var == 0`); `None` for any other condition.
fn tests_nonzero(ctx: &Context, condition: tree_sitter::Node, var: &str) -> Option<bool> {
    let is_var = |n: tree_sitter::Node| ctx.text(strip_parens(n)) == var;
    match condition.kind_name() {
        "identifier" if is_var(condition) => Some(true),
        "unary_expression" => {
            let operator = condition.field("operator")?;
            let argument = condition.field("argument")?;
            (ctx.text(operator) == "!" && is_var(argument)).then_some(false)
        }
        "binary_expression" => {
            let operator = ctx.text(condition.field("operator")?);
            let left = condition.field("left")?;
            let right = condition.field("right")?;
            let zero = |n: tree_sitter::Node| ctx.text(strip_parens(n)) == "0";
            let compares = (is_var(left) && zero(right)) || (zero(left) && is_var(right));
            match operator {
                "!=" if compares => Some(true),
                "==" if compares => Some(false),
                _ => None,
            }
        }
        _ => None,
    }
}

fn guarded(ctx: &Context, var: &str, assign: tree_sitter::Node, used: tree_sitter::Node) -> bool {
    let mut stack = vec![ctx.function];
    while let Some(node) = stack.pop() {
        if node.kind_name() == "if_statement"
            && node.start_byte() >= assign.end_byte()
            && node.end_byte() <= used.start_byte()
        {
            if let Some(condition) = node.field("condition") {
                let mut ids = Vec::new();
                collect_identifiers(ctx, condition, var, &mut ids);
                if !ids.is_empty() {
                    return true;
                }
            }
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    false
}
