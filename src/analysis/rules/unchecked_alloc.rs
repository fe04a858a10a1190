//! unchecked-alloc: an allocation that can fail is dereferenced before it is tested for NULL.

use super::{declarations, insert_after, Candidate, Context, Rule};
use crate::analysis::finding::{Fix, Message, Related, Severity};
use crate::analysis::flow::{self, Fact};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{self, callee_name};

pub const RULE: Rule = Rule {
    id: "unchecked-alloc",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "An allocation that can return NULL is dereferenced before it is tested for NULL.",
    why: "Allocators return NULL when memory is short (devm_* ones too). Dereferencing the \
          result without a test turns an allocation failure into a NULL pointer dereference, an \
          oops in the kernel.",
    how_to_fix: "Test the pointer right after the allocation and fail with -ENOMEM (or return \
                 NULL) before the first use.",
    query: include_str!("../../../queries/c/unchecked-alloc.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    // Only an allocation of this function can be used unchecked (the path walk follows
    // nothing else), and one tested by the very next statement cannot be used before the test:
    // a function without any other has nothing to walk.
    if ctx
        .matches
        .iter()
        .filter_map(|m| m.get("alloc"))
        .all(|call| flow::tested_right_after(call, ctx.source))
    {
        return out;
    }
    // Deviance: a user-space program that never tests an allocation for NULL (a host build
    // tool that lets the process die) does not believe they fail; kernel code does.
    if !crate::analysis::summary::file_tests_allocations(ctx.function, ctx.source) {
        return out;
    }
    for fact in ctx.facts() {
        let Fact::UncheckedUse { var, alloc, at } = fact else {
            continue;
        };
        let Some(call) = ctx.node_at(alloc) else {
            continue;
        };
        let name = callee_name(call, ctx.source).unwrap_or("the allocator");
        out.push(Candidate {
            severity: None,
            range: at,
            message: Message::new()
                .text(format!("`{var}` from {name}() at "))
                .line_of(alloc.start)
                .text(format!(
                    " is dereferenced here without a NULL check; {name}() returns NULL on failure"
                )),
            related: vec![Related {
                range: alloc,
                message: Message::new().text(format!("`{var}` is allocated here and may be NULL")),
            }],
            fixes: null_check(ctx, call, &var, name).into_iter().collect(),
        });
    }
    out
}

/// Inserts `if (!var) return <error>;` on the line after the allocating statement.
fn null_check(ctx: &Context, call: tree_sitter::Node, var: &str, allocator: &str) -> Option<Fix> {
    let statement = ctx.statement_of(call)?;
    if !matches!(
        statement.kind_name(),
        "expression_statement" | "declaration"
    ) {
        return None;
    }
    let kernel = !matches!(
        allocator,
        "malloc" | "calloc" | "realloc" | "strdup" | "strndup"
    );
    let function_text = ctx.text(ctx.function);
    let (return_type, pointer) = declarations::return_type(ctx.function, ctx.source);
    let failure = if declarations::returns_signed_int(ctx.function, ctx.source) && kernel {
        "return -ENOMEM;"
    } else if return_type == "void" && !pointer {
        "return;"
    } else if pointer
        && function_text.contains("return NULL;")
        && !function_text.contains("ERR_PTR(")
    {
        "return NULL;"
    } else {
        return None;
    };
    let unit = syntax::indent_unit(syntax::indentation(ctx.source, statement.start_byte()));
    insert_after(
        ctx.source,
        statement,
        &[format!("if (!{var})"), format!("{unit}{failure}")],
        format!("Return early when `{var}` is NULL"),
    )
}
