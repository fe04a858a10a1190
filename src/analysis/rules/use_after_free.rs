//! use-after-free: a pointer is used after it was freed on the same path.

use super::{Candidate, Context, Rule};
use crate::analysis::finding::{Message, Related, Severity};
use crate::analysis::flow::Fact;

pub const RULE: Rule = Rule {
    id: "use-after-free",
    severity: Severity::Error,
    confidence: 0.9,
    summary: "A pointer is dereferenced or passed on after it was freed on the same path.",
    why: "After the free the memory may already belong to someone else: reading it returns \
          garbage, writing it corrupts another object. Nothing between the free and the use \
          assigns the pointer again.",
    how_to_fix: "Move the free after the last use, or take what you need from the object before \
                 freeing it.",
    query: include_str!("../../../queries/c/use-after-free.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut reported = std::collections::HashSet::new();
    let mut out = Vec::new();
    if super::announces_misuse_of_freed_memory(ctx.function, ctx.source) {
        return Vec::new();
    }
    for fact in ctx.facts() {
        let Fact::UseAfterFree { var, free, at } = fact else {
            continue;
        };
        if !reported.insert((var.clone(), free)) {
            continue;
        }
        out.push(Candidate {
            severity: None,
            range: at,
            message: Message::new()
                .text(format!("`{var}` is used here after it was freed at "))
                .line_of(free.start),
            related: vec![Related {
                range: free,
                message: Message::new().text(format!("`{var}` is freed here")),
            }],
            fixes: Vec::new(),
        });
    }
    out
}
