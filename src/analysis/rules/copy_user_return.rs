//! copy-user-return: the byte count of copy_from_user()/copy_to_user() used as an error code.

use super::{declarations, replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::syntax::{callee_name, strip_parens};

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
    let signed = declarations::returns_signed_int(ctx.function, ctx.source);
    for m in &ctx.matches {
        let (Some(call), Some(name)) = (m.get("call"), m.get("fn")) else {
            continue;
        };
        let name = ctx.text(name);
        if let (Some(_), true) = (m.get("return"), signed) {
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
    let mut uses = Vec::new();
    collect_identifiers(ctx, ctx.function, var, &mut uses);
    let mut out = Vec::new();
    for node in uses
        .into_iter()
        .filter(|n| n.start_byte() >= assign.end_byte())
    {
        let mut parent = node.parent();
        while let Some(p) = parent.filter(|p| p.kind() == "parenthesized_expression") {
            parent = p.parent();
        }
        let Some(parent) = parent else { continue };
        let assigned_again = parent.kind() == "assignment_expression"
            && parent
                .child_by_field_name("left")
                .map(strip_parens)
                .map(|l| l.id())
                == Some(node.id());
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
        if parent.kind() == "return_statement" && signed {
            out.push(Candidate {
 severity: None,
                range: ByteRange::of(node),
                message: prefix.text(", the number of bytes not copied; returning it gives the caller a positive count instead of -EFAULT"),
                related: evidence,
                fixes: vec![replace(ByteRange::of(node), format!("{var} ? -EFAULT : 0"), "Return -EFAULT when the copy failed")],
            });
        } else if parent.kind() == "binary_expression"
            && parent
                .child_by_field_name("operator")
                .is_some_and(|o| ctx.text(o) == "<")
            && parent
                .child_by_field_name("right")
                .is_some_and(|r| ctx.text(r) == "0")
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
    if node.kind() == "identifier" && ctx.text(node) == name {
        out.push(node);
        return;
    }
    if node.kind() == "call_expression" && callee_name(node, ctx.source) == Some(name) {
        return;
    }
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        collect_identifiers(ctx, child, name, out);
    }
}
