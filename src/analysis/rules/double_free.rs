//! double-free: the same pointer is freed twice on one path.

use super::{insert_after, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Fix, Message, Related, Severity};
use crate::analysis::flow::{self, Fact};
use crate::analysis::syntax::callee_name;
use crate::analysis::syntax::Fields as _;

pub const RULE: Rule = Rule {
    id: "double-free",
    severity: Severity::Error,
    confidence: 0.9,
    summary: "The same pointer is freed twice on one path.",
    why: "The second free hands memory that may already be reused back to the allocator, which \
          corrupts its free lists. Nothing between the two frees assigns the pointer again.",
    how_to_fix: "Set the pointer to NULL after the first free (freeing NULL does nothing), or \
                 remove one of the frees.",
    query: include_str!("../../../queries/c/double-free.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    if super::announces_misuse_of_freed_memory(ctx.function, ctx.source) {
        return Vec::new();
    }
    for fact in ctx.facts_after_release_puts_if(|i| !flow::frees_at_most_once(i, ctx.function)) {
        let Fact::DoubleFree { var, first, second } = fact else {
            continue;
        };
        out.push(Candidate {
            severity: None,
            range: second,
            message: Message::new()
                .text(format!(
                    "`{var}` is freed again here; it was already freed at "
                ))
                .line_of(first.start),
            related: vec![Related {
                range: first,
                message: Message::new().text(format!("`{var}` is first freed here")),
            }],
            fixes: clear_after_first(ctx, first, &var).into_iter().collect(),
        });
    }
    out
}

/// `var = NULL;` after the first free, for the frees that accept NULL.
fn clear_after_first(ctx: &Context, first: ByteRange, var: &str) -> Option<Fix> {
    let call = ctx.node_at(first)?;
    let accepts_null = matches!(
        callee_name(call, ctx.source),
        Some(
            "kfree"
                | "kvfree"
                | "vfree"
                | "kfree_sensitive"
                | "kvfree_sensitive"
                | "kzfree"
                | "free"
        )
    );
    let statement = call
        .parent()
        .filter(|s| s.kind_name() == "expression_statement")?;
    if !accepts_null {
        return None;
    }
    insert_after(
        ctx.source,
        statement,
        &[format!("{var} = NULL;")],
        format!("Set `{var}` to NULL after the first free"),
    )
}
