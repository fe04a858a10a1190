//! use-after-free: a pointer is used after it was freed on the same path.

use super::{Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::flow::Fact;
use crate::analysis::syntax::Fields as _;

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

/// Calls that take a socket buffer over (the stack frees it or keeps it): the frees of the query
/// that are not frees by name.
const HANDS_ON: &[&str] = &[
    "netif_rx",
    "netif_receive_skb",
    "napi_gro_receive",
    "dev_queue_xmit",
];

/// The list iterator whose cursor `at` is (`list_for_each_entry(pos, head, member) {`): the
/// use is the iterator stepping on through the freed entry.
fn stepping_iterator<'t>(ctx: &Context<'t>, at: ByteRange) -> Option<&'t str> {
    let cursor = ctx.node_at(at)?;
    let mut node = cursor.parent()?;
    while node.kind_name() != "while_statement" {
        if !matches!(
            node.kind_name(),
            "comma_expression" | "parenthesized_expression"
        ) {
            return None;
        }
        node = node.parent()?;
    }
    let (name, args) = crate::analysis::syntax::iterator_macro(node, ctx.source)?;
    (args.first()?.id() == cursor.id()).then_some(name)
}

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
        // A socket buffer handed to the stack (`netif_rx(skb)`) is not freed by the call
        // itself on every path, but it is no longer the caller's to read.
        let callee = ctx
            .node_at(free)
            .and_then(|call| crate::analysis::syntax::callee_name(call, ctx.source))
            .filter(|name| HANDS_ON.contains(name));
        let returned = ctx
            .node_at(at)
            .and_then(|n| n.parent())
            .is_some_and(|p| p.kind_name() == "return_statement");
        let (freed, here) = match (stepping_iterator(ctx, at), callee) {
            (Some(iterator), _) => (
                format!(
                    "`{var}` is read here by {iterator}() to step to the next entry after the \
                     body freed it at "
                ),
                format!("`{var}` is freed here; {iterator}_safe() reads the next entry first"),
            ),
            (None, Some(name)) => (
                format!("`{var}` is used here after it was given to {name}() at "),
                format!("`{var}` is given to {name}() here, which frees it or keeps it"),
            ),
            (None, None) if returned => (
                format!("`{var}` is returned here after it was freed at "),
                format!("`{var}` is freed here"),
            ),
            (None, None) => (
                format!("`{var}` is used here after it was freed at "),
                format!("`{var}` is freed here"),
            ),
        };
        out.push(Candidate {
            severity: None,
            range: at,
            message: Message::new().text(freed).line_of(free.start),
            related: vec![Related {
                range: free,
                message: Message::new().text(here),
            }],
            fixes: Vec::new(),
        });
    }
    out
}
