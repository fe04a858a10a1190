//! size-overflow: `kmalloc(n * size)`: the product can overflow and allocate less than asked.

use super::{replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Severity};
use crate::analysis::syntax::{call_arguments, strip_parens};

pub const RULE: Rule = Rule {
    id: "size-overflow",
    severity: Severity::Warning,
    confidence: 0.8,
    summary: "An allocation size is a product that can overflow (`kmalloc(n * size)`).",
    why: "If `n` comes from a user, a device or a file, `n * size` can wrap around and allocate a \
          small buffer that the code then fills with `n` elements. The *_array and *calloc \
          allocators check the multiplication and fail instead.",
    how_to_fix: "Use kmalloc_array(n, size, gfp), kcalloc(), kvmalloc_array() or array_size().",
    query: include_str!("../../../queries/c/size-overflow.scm"),
    check,
};

/// The allocator that checks the multiplication, for each one that does not.
const ARRAY_ALLOCATORS: &[(&str, &str)] = &[
    ("kmalloc", "kmalloc_array"),
    ("kzalloc", "kcalloc"),
    ("kmalloc_node", "kmalloc_array_node"),
    ("kzalloc_node", "kcalloc_node"),
    ("kvmalloc", "kvmalloc_array"),
    ("kvzalloc", "kvcalloc"),
    ("vmalloc", "vmalloc_array"),
    ("vzalloc", "vcalloc"),
    ("malloc", "calloc"),
    ("devm_kmalloc", "devm_kmalloc_array"),
    ("devm_kzalloc", "devm_kcalloc"),
];

/// True for sizes known at compile time: literals, sizeof, and UPPER_CASE constants.
fn is_constant(ctx: &Context, node: tree_sitter::Node) -> bool {
    let node = strip_parens(node);
    match node.kind() {
        "number_literal" | "sizeof_expression" | "char_literal" | "alignof_expression" => true,
        "identifier" => ctx
            .text(node)
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
        "binary_expression" => ["left", "right"].iter().all(|f| {
            node.child_by_field_name(f)
                .is_some_and(|n| is_constant(ctx, n))
        }),
        _ => false,
    }
}

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in &ctx.matches {
        let (Some(call), Some(size), Some(name)) = (m.get("call"), m.get("size"), m.get("fn"))
        else {
            continue;
        };
        let (Some(left), Some(right)) = (
            size.child_by_field_name("left"),
            size.child_by_field_name("right"),
        ) else {
            continue;
        };
        if is_constant(ctx, size) {
            continue;
        }
        let name = ctx.text(name);
        let Some(&(_, array)) = ARRAY_ALLOCATORS.iter().find(|(a, _)| *a == name) else {
            continue;
        };
        let (count, each) = if strip_parens(left).kind() == "sizeof_expression" {
            (right, left)
        } else {
            (left, right)
        };
        let args: Vec<String> = call_arguments(call)
            .into_iter()
            .map(|a| {
                if a.id() == size.id() {
                    format!("{}, {}", ctx.text(count), ctx.text(each))
                } else {
                    ctx.text(a).to_owned()
                }
            })
            .collect();
        out.push(Candidate {
            range: ByteRange::of(size),
            message: Message::new().text(format!(
                "`{}` in {name}() is not checked for overflow; if it wraps, the buffer is smaller than {} elements. Use {array}()",
                ctx.text(size),
                ctx.text(count)
            )),
            related: Vec::new(),
            fixes: vec![replace(
                ByteRange::of(call),
                format!("{array}({})", args.join(", ")),
                format!("Use {array}()"),
            )],
        });
    }
    out
}
