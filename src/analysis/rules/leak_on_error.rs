//! leak-on-error: memory the function owns is neither freed nor handed on when it returns an error.

use super::{exit_message, exit_related, insert_before, Candidate, Context, Rule};
use crate::analysis::finding::{Message, Related, Severity};
use crate::analysis::flow::Fact;
use crate::analysis::syntax::{call_arguments, callee_name};

pub const RULE: Rule = Rule {
    id: "leak-on-error",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "Memory allocated in the function is not freed on an early error return.",
    why: "The pointer is the only reference to the allocation: it is a local variable, it was not \
          stored in a struct, put on a list or passed to a function that could keep it, and it is \
          not returned. Once the function returns the error, nobody can free it.",
    how_to_fix: "Free it before the return, or jump to the unwinding label that frees it \
                 (`goto err_free;`).",
    query: include_str!("../../../queries/c/leak-on-error.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for fact in ctx.facts() {
        let Fact::Leak { var, alloc, exit } = fact else {
            continue;
        };
        let Some(call) = ctx.node_at(alloc) else {
            continue;
        };
        let allocator = callee_name(call, ctx.source).unwrap_or("the allocator");
        let mut related = vec![Related {
            range: alloc,
            message: Message::new().text(format!("`{var}` is allocated here by {allocator}()")),
        }];
        related.extend(exit_related(&exit, "the error return"));
        let fix = free_call(ctx, call, allocator, &var).and_then(|free| {
            let statement = ctx.node_at(exit.decision())?;
            insert_before(
                ctx.source,
                statement,
                &[free],
                format!("Free `{var}` before leaving"),
            )
        });
        out.push(Candidate {
            range: exit.decision(),
            message: exit_message(
                ctx.source,
                Message::new()
                    .text(format!("`{var}` allocated at "))
                    .line_of(alloc.start)
                    .text(" is not freed "),
                &exit,
                "error return",
            ),
            related,
            fixes: fix.into_iter().collect(),
        });
    }
    out
}

/// The call that frees what `allocator` returned.
fn free_call(ctx: &Context, call: tree_sitter::Node, allocator: &str, var: &str) -> Option<String> {
    let free = match allocator {
        "kvmalloc" | "kvzalloc" | "kvcalloc" | "kvmalloc_array" | "vmemdup_user" => "kvfree",
        "vmalloc" | "vzalloc" | "vmalloc_array" | "vcalloc" => "vfree",
        "malloc" | "calloc" | "strdup" | "strndup" => "free",
        "kmem_cache_alloc" | "kmem_cache_zalloc" => {
            let cache = call_arguments(call).into_iter().next()?;
            return Some(format!("kmem_cache_free({}, {var});", ctx.text(cache)));
        }
        _ => "kfree",
    };
    Some(format!("{free}({var});"))
}
