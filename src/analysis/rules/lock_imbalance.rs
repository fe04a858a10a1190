//! lock-imbalance: a lock taken in the function is still held when the function returns.

use super::{exit_message, exit_related, insert_before, Candidate, Context, Rule};
use crate::analysis::finding::{Message, Related, Severity};
use crate::analysis::flow::Fact;
use crate::analysis::functions::function_name;
use crate::analysis::syntax::{call_arguments, callee_name};

pub const RULE: Rule = Rule {
    id: "lock-imbalance",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "A lock taken in the function is still held on a return path.",
    why: "Every other path releases the lock, or the function does not say it keeps it: it has no \
          `__acquires()` annotation and its name does not end in `_lock`. Returning with the lock \
          held deadlocks the next caller that takes it.",
    how_to_fix: "Release the lock before returning, or jump to the label that releases it \
                 (`goto out_unlock;`).",
    query: include_str!("../../../queries/c/lock-imbalance.scm"),
    check,
};

/// A function documented (`__acquires`) or named (`foo_lock`, `lock_foo`) to return with a lock held.
fn keeps_lock_by_design(ctx: &Context) -> bool {
    let name = function_name(ctx.function).map_or("", |n| ctx.text(n));
    let named = name
        .split('_')
        .any(|part| part == "lock" || part == "acquire");
    let header_end = ctx
        .function
        .child_by_field_name("body")
        .map_or(ctx.function.end_byte(), |b| b.start_byte());
    let header = &ctx.source[ctx.function.start_byte()..header_end];
    named || header.contains("__acquires") || ctx.text(ctx.function).contains("__acquire(")
}

fn check(ctx: &Context) -> Vec<Candidate> {
    if keeps_lock_by_design(ctx) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for fact in ctx.facts() {
        let Fact::LockHeld {
            lock,
            acquire,
            exit,
        } = fact
        else {
            continue;
        };
        let Some(call) = ctx.node_at(acquire) else {
            continue;
        };
        let taker = callee_name(call, ctx.source).unwrap_or("the lock call");
        // Argument-less locks (the RCU read side) are named by their call.
        let named = if lock.ends_with("()") {
            "the lock".to_owned()
        } else {
            format!("`{lock}`")
        };
        let mut related = vec![Related {
            range: acquire,
            message: Message::new().text(format!("{named} is taken here by {taker}()")),
        }];
        related.extend(exit_related(&exit, "the return"));
        let fix = release_call(ctx, call, taker).and_then(|release| {
            let statement = ctx.node_at(exit.decision())?;
            if statement.kind() == "compound_statement" {
                return None;
            }
            insert_before(
                ctx.source,
                statement,
                &[release],
                format!("Release {named} before leaving"),
            )
        });
        out.push(Candidate {
            range: exit.decision(),
            message: exit_message(
                ctx.source,
                Message::new()
                    .text(format!("{named} taken by {taker}() at "))
                    .line_of(acquire.start)
                    .text(" is still held "),
                &exit,
                "return",
            ),
            related,
            fixes: fix.into_iter().collect(),
        });
    }
    out
}

/// The call that releases what `taker` acquired, with the same lock (and flags) arguments.
fn release_call(ctx: &Context, call: tree_sitter::Node, taker: &str) -> Option<String> {
    const PAIRS: &[(&str, &str)] = &[
        ("mutex_lock", "mutex_unlock"),
        ("mutex_lock_nested", "mutex_unlock"),
        ("spin_lock", "spin_unlock"),
        ("spin_lock_nested", "spin_unlock"),
        ("spin_lock_irq", "spin_unlock_irq"),
        ("spin_lock_irqsave", "spin_unlock_irqrestore"),
        ("spin_lock_bh", "spin_unlock_bh"),
        ("raw_spin_lock", "raw_spin_unlock"),
        ("raw_spin_lock_irq", "raw_spin_unlock_irq"),
        ("raw_spin_lock_irqsave", "raw_spin_unlock_irqrestore"),
        ("raw_spin_lock_bh", "raw_spin_unlock_bh"),
        ("read_lock", "read_unlock"),
        ("read_lock_irq", "read_unlock_irq"),
        ("read_lock_irqsave", "read_unlock_irqrestore"),
        ("read_lock_bh", "read_unlock_bh"),
        ("write_lock", "write_unlock"),
        ("write_lock_irq", "write_unlock_irq"),
        ("write_lock_irqsave", "write_unlock_irqrestore"),
        ("write_lock_bh", "write_unlock_bh"),
        ("down_read", "up_read"),
        ("down_write", "up_write"),
        ("down", "up"),
        ("pthread_mutex_lock", "pthread_mutex_unlock"),
        ("lock_sock", "release_sock"),
        ("rcu_read_lock", "rcu_read_unlock"),
        ("mutex_lock_interruptible", "mutex_unlock"),
        ("mutex_lock_interruptible_nested", "mutex_unlock"),
        ("mutex_lock_killable", "mutex_unlock"),
        ("mutex_trylock", "mutex_unlock"),
        ("spin_trylock", "spin_unlock"),
        ("spin_trylock_bh", "spin_unlock_bh"),
        ("spin_trylock_irq", "spin_unlock_irq"),
        ("raw_spin_trylock", "raw_spin_unlock"),
        ("down_interruptible", "up"),
        ("down_killable", "up"),
        ("down_trylock", "up"),
        ("down_read_killable", "up_read"),
        ("down_read_interruptible", "up_read"),
        ("down_write_killable", "up_write"),
        ("down_read_trylock", "up_read"),
        ("down_write_trylock", "up_write"),
        ("read_trylock", "read_unlock"),
        ("write_trylock", "write_unlock"),
    ];
    let release = PAIRS.iter().find(|(a, _)| *a == taker)?.1;
    let args = call_arguments(call);
    let keep = if taker.ends_with("irqsave") { 2 } else { 1 };
    let args: Vec<&str> = args.iter().take(keep).map(|a| ctx.text(*a)).collect();
    Some(format!("{release}({});", args.join(", ")))
}
