//! size-overflow: `kmalloc(n * size)`: the product can overflow and allocate less than asked.

use crate::analysis::syntax::Fields as _;
use tree_sitter::Node;

use super::{declarations, replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Severity};
use crate::analysis::syntax::{
    self, assignment, call_arguments, callee_name, declared_name, strip_parens,
};

pub const RULE: Rule = Rule {
    id: "size-overflow",
    severity: Severity::Warning,
    confidence: 0.8,
    summary: "An allocation size is a product that can overflow (`kmalloc(n * size)`).",
    why: "If `n` comes from a user, a device or a file, `n * size` can wrap around and allocate a \
          small buffer that the code then fills with `n` elements. The *_array and *calloc \
          allocators check the multiplication and fail instead. It is a warning only when the \
          function shows an operand that can be large: read from a device (`le32_to_cpu()`), \
          copied from user space, or a parameter that nothing bounds on the way (and that the \
          file's callers do not all pass as constants); otherwise it is a hint.",
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
    match node.kind_name() {
        "number_literal" | "sizeof_expression" | "char_literal" | "alignof_expression" => true,
        "identifier" => {
            let name = ctx.text(node);
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                || small_constant_at(ctx, node, name)
        }
        "binary_expression" => ["left", "right"]
            .iter()
            .all(|f| node.field(f).is_some_and(|n| is_constant(ctx, n))),
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
        let (Some(left), Some(right)) = (size.field("left"), size.field("right")) else {
            continue;
        };
        if is_constant(ctx, size) {
            continue;
        }
        let name = ctx.text(name);
        let Some(&(_, array)) = ARRAY_ALLOCATORS.iter().find(|(a, _)| *a == name) else {
            continue;
        };
        let (count, each) = if strip_parens(left).kind_name() == "sizeof_expression" {
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
        let large = [count, each]
            .into_iter()
            .find_map(|operand| large_operand(ctx, operand, call));
        let message = match &large {
            Some(why) => format!(
                "`{}` in {name}() is not checked for overflow and {why}; if it wraps, the buffer is smaller than {} elements. Use {array}()",
                ctx.text(size),
                ctx.text(count)
            ),
            None => format!(
                "`{}` in {name}() is not checked for overflow; nothing here shows an operand that can be large, but {array}() would check it",
                ctx.text(size)
            ),
        };
        out.push(Candidate {
            severity: large.is_none().then_some(Severity::Hint),
            range: ByteRange::of(size),
            message: Message::new().text(message),
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
                p.kind_name(),
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
                p.kind_name(),
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
        v.kind_name() == "number_literal"
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
    match node.kind_name() {
        "parameter_declaration"
            if node
                .field("declarator")
                .and_then(crate::analysis::syntax::declared_name)
                .is_some_and(|n| ctx.text(n) == name) =>
        {
            return false;
        }
        "init_declarator"
            if node
                .field("declarator")
                .is_some_and(|d| d.kind_name() == "identifier" && ctx.text(d) == name) =>
        {
            out.push((node, node.field("value")));
        }
        "assignment_expression" if names(node.field("left")) => {
            let plain = node.field("operator").is_some_and(|o| ctx.text(o) == "=");
            out.push((node, node.field("right").filter(|_| plain)));
        }
        "update_expression" if names(node.field("argument")) => out.push((node, None)),
        "pointer_expression" => {
            let address_of = node.field("operator").is_some_and(|o| ctx.text(o) == "&");
            if address_of && names(node.field("argument")) {
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

/// Calls whose result is data from a device or a wire, in whatever byte order.
const EXTERNAL_DATA: &[&str] = &[
    "le16_to_cpu",
    "le32_to_cpu",
    "le64_to_cpu",
    "be16_to_cpu",
    "be32_to_cpu",
    "be64_to_cpu",
    "__le16_to_cpu",
    "__le32_to_cpu",
    "__be16_to_cpu",
    "__be32_to_cpu",
    "le16_to_cpup",
    "le32_to_cpup",
    "be16_to_cpup",
    "be32_to_cpup",
    "get_unaligned_le16",
    "get_unaligned_le32",
    "get_unaligned_be16",
    "get_unaligned_be32",
    "get_unaligned",
    "ntohs",
    "ntohl",
    "readl",
    "readw",
    "ioread32",
    "ioread16",
];

/// Why `operand` can be large at `call`, when the function's code shows it: data from a device
/// or from user space, or a parameter that nothing bounds on the way (and that the file's own
/// callers do not all pass as constants). `None` when nothing says so.
fn large_operand(ctx: &Context, operand: Node, call: Node) -> Option<String> {
    let operand = strip_parens(operand);
    if is_constant(ctx, operand) || narrow(ctx, operand) {
        return None;
    }
    let text = ctx.text(operand);
    // The variable (or the struct a field is read from) that the value comes from.
    let root = root_name(ctx, operand)?;
    if bounded_before(ctx, &root, text, call) {
        return None;
    }
    if let Some(source) = external_source(ctx, operand) {
        return Some(format!("`{text}` is read from {source}"));
    }
    // A local assigned from device or user data.
    if operand.kind_name() == "identifier" {
        if let Some(source) = assigned_from_external(ctx, &root, call) {
            return Some(format!("`{text}` is read from {source}"));
        }
    }
    if let Some(source) = user_struct(ctx, &root, call) {
        return Some(format!("`{text}` comes from user space ({source})"));
    }
    // A parameter that nothing in this function bounds is still most often bounded by its
    // callers (ring sizes, counts from tables): on Linux 6.12 none of the parameter-only
    // products in a sample of 40 findings could wrap, so it stays a hint. The exception is an
    // ioctl handler's parameters, which user space chooses.
    let ioctl = crate::analysis::functions::function_name(ctx.function)
        .is_some_and(|n| ctx.text(n).contains("ioctl"));
    if !ioctl || operand.kind_name() != "identifier" {
        return None;
    }
    let mut name = root;
    for _ in 0..4 {
        if is_parameter(ctx, &name) {
            if bounded_before(ctx, &name, &name, call) {
                return None;
            }
            let via = if name == text {
                String::new()
            } else {
                format!(" (through `{name}`)")
            };
            return Some(format!(
                "`{text}` is an ioctl parameter{via}, chosen by user space, that nothing bounds before this call"
            ));
        }
        name = copied_from(ctx, &name, call)?;
    }
    None
}

/// The variable that local `name` copies: its only assignment before `call` is `name = other`
/// (or its initializer is `other`).
fn copied_from(ctx: &Context, name: &str, call: Node) -> Option<String> {
    let mut values = Vec::new();
    walk(ctx.function, &mut |node| {
        if node.start_byte() >= call.start_byte() {
            return;
        }
        let (target, value) = match assignment(node) {
            Some((target, value)) => (Some(target), Some(value)),
            None if node.kind_name() == "update_expression" => (node.field("argument"), None),
            None => return,
        };
        if target.is_some_and(|t| ctx.text(strip_parens(t)) == name) {
            values.push(value.map(strip_parens));
        }
    });
    match values.as_slice() {
        [Some(value)] if value.kind_name() == "identifier" => Some(ctx.text(*value).to_owned()),
        _ => None,
    }
}

/// True for values that are small by type: a cast to or a declaration as an 8- or 16-bit type.
fn narrow(ctx: &Context, operand: Node) -> bool {
    const NARROW: &[&str] = &[
        "u8",
        "u16",
        "s8",
        "s16",
        "__u8",
        "__u16",
        "uint8_t",
        "uint16_t",
        "char",
        "bool",
        "unsigned char",
        "unsigned short",
        "short",
    ];
    if let Some(cast) = Some(operand).filter(|n| n.kind_name() == "cast_expression") {
        let ty = cast.field("type").map_or("", |t| ctx.text(t).trim());
        return NARROW.contains(&ty);
    }
    if operand.kind_name() != "identifier" {
        return false;
    }
    declarations::declared(ctx.function, ctx.text(operand), ctx.source)
        .is_some_and(|d| !d.pointer && !d.array && NARROW.contains(&ctx.text(d.type_node).trim()))
}

/// The variable at the root of `p`, `p->a.b`, `p[i]`, or a call's first argument.
fn root_name(ctx: &Context, node: Node) -> Option<String> {
    let node = strip_parens(node);
    match node.kind_name() {
        "identifier" => Some(ctx.text(node).to_owned()),
        "field_expression" | "subscript_expression" => root_name(ctx, node.field("argument")?),
        "call_expression" => root_name(ctx, *call_arguments(node).first()?),
        "pointer_expression" => root_name(ctx, node.field("argument")?),
        _ => None,
    }
}

/// The byte-order call that `node` reads through (`le32_to_cpu(hdr->len)`), if any.
fn external_source(ctx: &Context, node: Node) -> Option<String> {
    let node = strip_parens(node);
    if node.kind_name() == "call_expression" {
        let name = callee_name(node, ctx.source)?;
        if EXTERNAL_DATA.contains(&name) {
            return Some(format!("device or wire data by {name}()"));
        }
    }
    None
}

/// A call whose result was assigned to local `name` before `call`: device or wire data.
fn assigned_from_external(ctx: &Context, name: &str, call: Node) -> Option<String> {
    let mut found = None;
    walk(ctx.function, &mut |node| {
        if node.start_byte() >= call.start_byte() || found.is_some() {
            return;
        }
        if let Some((target, value)) = assignment(node) {
            if ctx.text(strip_parens(target)) == name {
                found = external_source(ctx, value);
            }
        }
    });
    found
}

/// `copy_from_user(&name, ...)`, `copy_from_user(name, ...)` or `name = memdup_user(...)` before
/// `call`: the struct's fields are user data.
fn user_struct(ctx: &Context, name: &str, call: Node) -> Option<String> {
    let mut found = None;
    walk(ctx.function, &mut |node| {
        if node.start_byte() >= call.start_byte() || found.is_some() {
            return;
        }
        if node.kind_name() == "call_expression" {
            let callee = callee_name(node, ctx.source).unwrap_or("");
            if matches!(callee, "copy_from_user" | "__copy_from_user" | "get_user") {
                let target = call_arguments(node).into_iter().next();
                if target.and_then(|t| root_name(ctx, t)).as_deref() == Some(name) {
                    found = Some(format!("{callee}() at line {}", line_of(ctx, node)));
                }
            }
            if matches!(callee, "memdup_user" | "vmemdup_user") {
                let target = syntax::parent_outside_casts(node).and_then(|p| match p.kind_name() {
                    "assignment_expression" => p.field("left"),
                    "init_declarator" => p.field("declarator"),
                    _ => None,
                });
                if target.and_then(|t| root_name(ctx, t)).as_deref() == Some(name) {
                    found = Some(format!("{callee}() at line {}", line_of(ctx, node)));
                }
            }
        }
    });
    found
}

fn line_of(ctx: &Context, node: Node) -> usize {
    ctx.source[..node.start_byte()].matches('\n').count() + 1
}

/// True when the code before `call` compares `root` (or the operand's own text) with `<`, `>`,
/// `<=`, `>=`, or passes it through `min()`/`clamp()`: a bound on the way.
fn bounded_before(ctx: &Context, root: &str, text: &str, call: Node) -> bool {
    let mut bounded = false;
    walk(ctx.function, &mut |node| {
        if bounded || node.start_byte() >= call.start_byte() {
            return;
        }
        let mentions = |n: Node| {
            let t = ctx.text(strip_parens(n));
            t == text || t == root || t.ends_with(&format!("->{text}"))
        };
        match node.kind_name() {
            "binary_expression" => {
                let op = node.field("operator").map_or("", |o| ctx.text(o));
                if matches!(op, "<" | ">" | "<=" | ">=") {
                    bounded = ["left", "right"]
                        .iter()
                        .filter_map(|f| node.field(f))
                        .any(mentions);
                }
            }
            "call_expression" => {
                let callee = callee_name(node, ctx.source).unwrap_or("");
                if callee.starts_with("min") || callee.starts_with("clamp") {
                    bounded = call_arguments(node).into_iter().any(mentions);
                }
            }
            _ => {}
        }
    });
    bounded
}

fn is_parameter(ctx: &Context, name: &str) -> bool {
    let Some(declarator) = ctx.function.field("declarator") else {
        return false;
    };
    let mut found = false;
    walk(declarator, &mut |node| {
        if node.kind_name() == "parameter_declaration"
            && node
                .field("declarator")
                .and_then(declared_name)
                .is_some_and(|n| ctx.text(n) == name)
        {
            found = true;
        }
    });
    found
}

/// Calls `visit` on every node under `node`, in source order.
fn walk<'t>(node: Node<'t>, visit: &mut impl FnMut(Node<'t>)) {
    let mut cursor = node.walk();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        visit(n);
        let children: Vec<_> = n.named_children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
}
