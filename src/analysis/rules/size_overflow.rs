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
        "identifier" => {
            let name = ctx.text(node);
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                || small_constant_at(ctx, node, name)
        }
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

/// Below this, a count times any element size cannot overflow a `size_t` of 32 bits or more.
const SMALL: u64 = 1 << 16;

/// True when the value of local `name` at `call` is an integer literal below `SMALL`: the last
/// assignment before the call that every path runs sets it to such a literal, no assignment on a
/// branch or in an enclosing loop can change it, and its address is never taken.
fn small_constant_at(ctx: &Context, call: tree_sitter::Node, name: &str) -> bool {
    let mut writes = Vec::new();
    if !collect_writes(ctx, ctx.function, name, &mut writes) {
        return false;
    }
    let is_ancestor = |a: tree_sitter::Node, mut n: tree_sitter::Node| loop {
        if n.id() == a.id() {
            return true;
        }
        match n.parent() {
            Some(p) => n = p,
            None => return false,
        }
    };
    // The nearest branch or loop around a write that does not also hold the call.
    let conditional = |w: tree_sitter::Node| {
        let mut n = w;
        while let Some(p) = n.parent() {
            if p.id() == ctx.function.id() {
                return false;
            }
            let branching = matches!(
                p.kind(),
                "if_statement"
                    | "for_statement"
                    | "while_statement"
                    | "do_statement"
                    | "switch_statement"
                    | "case_statement"
                    | "conditional_expression"
            );
            if branching && !is_ancestor(p, call) {
                return true;
            }
            n = p;
        }
        false
    };
    let in_shared_loop = |w: tree_sitter::Node| {
        let mut n = w;
        while let Some(p) = n.parent() {
            if matches!(
                p.kind(),
                "for_statement" | "while_statement" | "do_statement"
            ) && is_ancestor(p, call)
            {
                return true;
            }
            n = p;
        }
        false
    };
    let mut last = None;
    for (write, value) in writes {
        if write.start_byte() >= call.start_byte() {
            if in_shared_loop(write) {
                return false;
            }
            continue;
        }
        if conditional(write) {
            return false;
        }
        last = Some(value);
    }
    let small = |v: tree_sitter::Node| {
        let v = strip_parens(v);
        v.kind() == "number_literal"
            && ctx
                .text(v)
                .trim_end_matches(['u', 'U', 'l', 'L'])
                .parse::<u64>()
                .is_ok_and(|n| n < SMALL)
    };
    last.flatten().is_some_and(small)
}

/// Collects the writes to `name` (with the value written, `None` for `+=`, `++` and the like);
/// false when `name` is a parameter or its address is taken.
fn collect_writes<'t>(
    ctx: &Context<'t>,
    node: tree_sitter::Node<'t>,
    name: &str,
    out: &mut Vec<(tree_sitter::Node<'t>, Option<tree_sitter::Node<'t>>)>,
) -> bool {
    let names = |n: Option<tree_sitter::Node>| n.is_some_and(|n| ctx.text(strip_parens(n)) == name);
    match node.kind() {
        "parameter_declaration"
            if node
                .child_by_field_name("declarator")
                .and_then(crate::analysis::syntax::declared_name)
                .is_some_and(|n| ctx.text(n) == name) =>
        {
            return false;
        }
        "init_declarator"
            if node
                .child_by_field_name("declarator")
                .is_some_and(|d| d.kind() == "identifier" && ctx.text(d) == name) =>
        {
            out.push((node, node.child_by_field_name("value")));
        }
        "assignment_expression" if names(node.child_by_field_name("left")) => {
            let plain = node
                .child_by_field_name("operator")
                .is_some_and(|o| ctx.text(o) == "=");
            out.push((node, node.child_by_field_name("right").filter(|_| plain)));
        }
        "update_expression" if names(node.child_by_field_name("argument")) => {
            out.push((node, None))
        }
        "pointer_expression" => {
            let address_of = node
                .child_by_field_name("operator")
                .is_some_and(|o| ctx.text(o) == "&");
            if address_of && names(node.child_by_field_name("argument")) {
                return false;
            }
        }
        _ => {}
    }
    let mut cursor = node.walk();
    let children: Vec<_> = node.named_children(&mut cursor).collect();
    children
        .into_iter()
        .all(|c| collect_writes(ctx, c, name, out))
}
