//! off-by-one: `i <= ARRAY_SIZE(a)` with `a[i]` in the loop, or `buf[sizeof(buf)]`.

use super::{declarations, replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{squash, strip_parens};

pub const RULE: Rule = Rule {
    id: "off-by-one",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "An array is indexed one past its end (`i <= ARRAY_SIZE(a)`, `buf[sizeof(buf)]`).",
    why: "Valid indices of an array of N elements run from 0 to N - 1. A loop that runs while \
          `i <= ARRAY_SIZE(a)` and reads `a[i]`, or an access to `buf[sizeof(buf)]`, touches the \
          element after the last one.",
    how_to_fix: "Use `<` in the loop condition; write the terminator at `buf[sizeof(buf) - 1]`.",
    query: include_str!("../../../queries/c/off-by-one.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in &ctx.matches {
        if let (Some(compare), Some(index), Some(array), Some(body)) = (
            m.get("compare"),
            m.get("index"),
            m.get("array"),
            m.get("body"),
        ) {
            let (index, array) = (ctx.text(index), squash(ctx.text(array)));
            let Some(access) = find_subscript(ctx, body, &array, index) else {
                continue;
            };
            let Some(operator) = compare.field("operator") else {
                continue;
            };
            out.push(Candidate {
                severity: None,
                range: ByteRange::of(compare),
                message: Message::new()
                    .text(format!(
                        "the loop runs while `{}`, so its last pass reads `{}` at ",
                        ctx.text(compare),
                        ctx.text(access)
                    ))
                    .line_of(access.start_byte())
                    .text(" one past the end"),
                related: vec![Related {
                    range: ByteRange::of(access),
                    message: Message::new().text(format!(
                        "`{}` is indexed with `{index}` here",
                        ctx.text(access.field("argument").unwrap_or(access))
                    )),
                }],
                fixes: vec![replace(
                    ByteRange::of(operator),
                    "<",
                    "Use `<` in the loop condition",
                )],
            });
        } else if let (Some(subscript), Some(array), Some(size_of)) =
            (m.get("subscript"), m.get("array"), m.get("size.of"))
        {
            let name = ctx.text(array);
            if name != ctx.text(size_of) {
                continue;
            }
            // A local array, or an array field of a struct the file defines (`info->name`).
            let declared = if array.kind_name() == "field_expression" {
                declarations::field_declared(ctx.function, array, ctx.source)
            } else {
                declarations::declared(ctx.function, name, ctx.source)
            };
            let is_array = declared.is_some_and(|d| d.array);
            let Some(index) = subscript.field("index") else {
                continue;
            };
            // `&buf[sizeof(buf)]` only forms the one-past-the-end address, which C allows.
            let address_only = subscript.parent().is_some_and(|p| {
                p.kind_name() == "pointer_expression"
                    && p.field("operator").is_some_and(|o| ctx.text(o) == "&")
            });
            if !is_array || address_only {
                continue;
            }
            out.push(Candidate {
                severity: None,
                range: ByteRange::of(subscript),
                message: Message::new().text(format!(
                    "`{}` is one past the end of `{name}`; its last element is `{name}[{} - 1]`",
                    ctx.text(subscript),
                    ctx.text(index)
                )),
                related: Vec::new(),
                fixes: vec![replace(
                    ByteRange::of(index),
                    format!("{} - 1", ctx.text(index)),
                    "Index the last element instead",
                )],
            });
        }
    }
    out
}

/// Finds `array[index]` in `node`.
fn find_subscript<'t>(
    ctx: &Context<'t>,
    node: tree_sitter::Node<'t>,
    array: &str,
    index: &str,
) -> Option<tree_sitter::Node<'t>> {
    if node.kind_name() == "subscript_expression" {
        let same_array = node
            .field("argument")
            .is_some_and(|a| squash(ctx.text(a)) == array);
        let same_index = node.field("index").is_some_and(|i| {
            strip_parens(i).kind_name() == "identifier" && ctx.text(strip_parens(i)) == index
        });
        if same_array && same_index {
            return Some(node);
        }
    }
    let mut cursor = node.walk();
    let children: Vec<_> = node.named_children(&mut cursor).collect();
    children
        .into_iter()
        .find_map(|c| find_subscript(ctx, c, array, index))
}
