//! sizeof-pointer: `sizeof(p)` of a pointer where the size of what it points to was meant.

use super::{declarations, replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{call_arguments, strip_parens};

pub const RULE: Rule = Rule {
    id: "sizeof-pointer",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "`sizeof(p)` of a pointer is used as the size of the memory it points to.",
    why: "sizeof of a pointer is the size of the pointer itself (8 bytes on 64-bit), whatever it \
          points to, so the call allocates, clears or copies the wrong number of bytes. Array \
          parameters (`char buf[64]`) are pointers too.",
    how_to_fix: "Use `sizeof(*p)` for one object, or pass the real buffer length.",
    query: include_str!("../../../queries/c/sizeof-pointer.scm"),
    check,
};

const ALLOCATORS: &[&str] = &[
    "kmalloc",
    "kzalloc",
    "kvmalloc",
    "kvzalloc",
    "vmalloc",
    "vzalloc",
    "malloc",
    "devm_kmalloc",
    "devm_kzalloc",
];

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in &ctx.matches {
        let (Some(call), Some(var), Some(size), Some(name)) =
            (m.get("call"), m.get("var"), m.get("sizeof"), m.get("fn"))
        else {
            continue;
        };
        // A local or parameter, or a field of a struct the file defines (`priv->regcache`).
        let declared = if var.kind_name() == "field_expression" {
            declarations::field_declared(ctx.function, var, ctx.source)
        } else {
            declarations::declared(ctx.function, ctx.text(var), ctx.source)
        };
        let (var, name) = (ctx.text(var), ctx.text(name));
        let Some(declared) = declared else {
            continue;
        };
        if !declared.pointer {
            continue;
        }
        let args = call_arguments(call);
        let names = |n: tree_sitter::Node| {
            let n = strip_parens(n);
            matches!(n.kind_name(), "identifier" | "field_expression") && ctx.text(n) == var
        };
        let address_taken = args.iter().any(|a| {
            let a = strip_parens(*a);
            a.kind_name() == "pointer_expression"
                && ctx.text(a).trim_start_matches('&').trim() == var
        });
        let relevant = if ALLOCATORS.contains(&name) {
            allocated_into(ctx, call).as_deref() == Some(var)
        } else {
            args.iter().any(|a| names(*a))
        };
        if address_taken || !relevant {
            continue;
        }
        let type_node = declared.type_node;
        let object = matches!(
            type_node.kind_name(),
            "struct_specifier" | "union_specifier"
        ) || (type_node.kind_name() == "type_identifier"
            && !matches!(
                ctx.text(type_node),
                "u8" | "s8" | "__u8" | "uint8_t" | "int8_t" | "u_char"
            ));
        let fixes = if object {
            vec![replace(
                ByteRange::of(size),
                format!("sizeof(*{var})"),
                format!("Use `sizeof(*{var})`"),
            )]
        } else {
            Vec::new()
        };
        out.push(Candidate {
 severity: None,
            range: ByteRange::of(size),
            message: Message::new().text(format!(
                "`{}` in {name}() is the size of the pointer `{var}`, not of the memory it points to",
                ctx.text(size)
            )),
            related: vec![Related {
                range: ByteRange::of(declared.declaration),
                message: Message::new().text(format!("`{var}` is declared as a pointer here")),
            }],
            fixes,
        });
    }
    out
}

/// The variable an allocation is assigned to (`p = kmalloc(...)`, `struct foo *p = kmalloc(...)`).
fn allocated_into(ctx: &Context, call: tree_sitter::Node) -> Option<String> {
    let mut parent = call.parent()?;
    while matches!(
        parent.kind_name(),
        "parenthesized_expression" | "cast_expression"
    ) {
        parent = parent.parent()?;
    }
    let target = match parent.kind_name() {
        "assignment_expression" => parent.field("left")?,
        "init_declarator" => crate::analysis::syntax::declared_name(parent)?,
        _ => return None,
    };
    Some(ctx.text(strip_parens(target)).to_owned())
}
