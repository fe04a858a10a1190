//! lock-imbalance: a lock taken in the function is still held when the function returns.

use super::{declarations, exit_message, exit_related, insert_before, Candidate, Context, Rule};
use crate::analysis::syntax::Fields as _;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::flow::{self, same_fields, Exit, Fact, Returns};
use crate::analysis::functions::function_name;
use crate::analysis::summary::{annotation_arguments, takes_lock};
use crate::analysis::syntax::{any_node, call_arguments, callee_name, next_code_sibling, squash};

pub const RULE: Rule = Rule {
    id: "lock-imbalance",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "A lock taken in the function is still held on a return path.",
    why: "The function's own code says the lock should be released: another path releases the \
          lock taken at the same place, and the path reported keeps it. The function was not \
          entered holding it (it never releases it before taking it, and no `__must_hold()`/\
          `__releases()` annotation names it); it is not an acquire helper (`__acquires()`, a \
          `_lock` name, a lock kept on every exit, or released only where the function fails and \
          kept on its successful way out); no callee of the same file releases it, no comment on \
          the path says a callee did, and the lock was not given to a callee that the releasing \
          paths do not call. Returning with the lock held deadlocks the next caller that takes \
          it.",
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
        .field("body")
        .map_or(ctx.function.end_byte(), |b| b.start_byte());
    let header = &ctx.source[ctx.function.start_byte()..header_end];
    named || header.contains("__acquires")
}

/// The locks the function's header names in `__must_hold(x)`, `__releases(x)` or
/// `__cond_acquires(x)`: the function is entered holding them, or says what it does with them.
fn annotated_locks(ctx: &Context) -> Vec<String> {
    let header_end = ctx
        .function
        .field("body")
        .map_or(ctx.function.end_byte(), |b| b.start_byte());
    let header = &ctx.source[ctx.function.start_byte()..header_end];
    ["__must_hold(", "__releases(", "__cond_acquires("]
        .iter()
        .flat_map(|a| annotation_arguments(header, a))
        .collect()
}

/// True when `lock` is the lock an annotation names: the same expression, or the same fields
/// reached from another name of the same object (`&ffs->ev.waitq.lock` and
/// `&epfile->ffs->ev.waitq.lock`).
fn same_lock(lock: &str, annotated: &str) -> bool {
    lock == annotated || same_fields(lock, annotated)
}

/// Decides which exits that hold a lock deviate from what the function's own code says it does
/// with that lock, and drops the rest:
/// - a lock the function was entered holding (released on a path that did not take it), or
///   that its annotations name, is the caller's;
/// - a lock that no path releases after taking it is kept on purpose (an acquire helper, or a
///   lock retaken before returning to a caller that holds it);
/// - a lock released only on error returns and held on the successful ones is an acquire
///   helper's (`foo_get_ownership()` returns 0 holding it);
/// - a lock held on every exit, whichever call took it last, is what the function is for.
///
/// What is left is a path that holds the lock where a sibling path of the same function
/// releases it.
fn deviant(
    facts: Vec<Fact>,
    annotated: &[String],
    returns_pointer: bool,
    main_exit: Option<ByteRange>,
    has_release_helper: impl Fn(&str) -> bool,
    is_semaphore: impl Fn(ByteRange) -> bool,
    returns_call: impl Fn(&Exit) -> bool,
) -> Vec<(String, ByteRange, Exit)> {
    let entered_held: HashSet<String> = facts
        .iter()
        .filter_map(|f| match f {
            Fact::EnteredHeld { lock, .. } => Some(lock.clone()),
            _ => None,
        })
        .collect();
    let mut held: BTreeMap<ByteRange, Vec<(String, Exit, Returns)>> = BTreeMap::new();
    let mut released: BTreeMap<ByteRange, Vec<(Exit, Returns)>> = BTreeMap::new();
    // Calls made holding the lock and given the lock: on the paths that keep it, and on the
    // paths that released it themselves.
    let mut calls_keeping: HashMap<(ByteRange, Exit), HashSet<ByteRange>> = HashMap::new();
    let mut calls_releasing: HashMap<ByteRange, HashSet<ByteRange>> = HashMap::new();
    for fact in facts {
        match fact {
            Fact::LockHeld {
                lock,
                acquire,
                exit,
                returns,
                calls,
            } => {
                calls_keeping
                    .entry((acquire, exit.clone()))
                    .or_default()
                    .extend(calls);
                let exits = held.entry(acquire).or_default();
                if !exits
                    .iter()
                    .any(|(l, e, r)| *l == lock && *e == exit && *r == returns)
                {
                    exits.push((lock, exit, returns));
                }
            }
            Fact::LockReleased {
                acquire,
                exit,
                returns,
                calls,
                ..
            } => {
                calls_releasing.entry(acquire).or_default().extend(calls);
                let exits = released.entry(acquire).or_default();
                if !exits.iter().any(|(e, r)| *e == exit && *r == returns) {
                    exits.push((exit, returns));
                }
            }
            _ => {}
        }
    }
    // A path that keeps the lock after giving it to a callee that no releasing path calls
    // (`xlog_wait(&cil->xc_push_wait, &cil->xc_push_lock)`): the callee, maybe in another
    // file, may have released it, so the path says nothing against the function.
    let handed = |acquire: ByteRange, exit: &Exit| {
        let none = HashSet::new();
        let releasing = calls_releasing.get(&acquire).unwrap_or(&none);
        calls_keeping
            .get(&(acquire, exit.clone()))
            .is_some_and(|calls| calls.iter().any(|c| !releasing.contains(c)))
    };
    // Exits that hold each lock, whichever call took it, and exits that released it.
    let mut holding: BTreeMap<&str, HashSet<&Exit>> = BTreeMap::new();
    for (lock, exit, _) in held.values().flatten() {
        holding.entry(lock.as_str()).or_default().insert(exit);
    }
    let mut releasing: BTreeMap<&str, Vec<&(Exit, Returns)>> = BTreeMap::new();
    for (acquire, exits) in &released {
        let Some(lock) = held.get(acquire).map(|h| h[0].0.as_str()) else {
            continue;
        };
        for exit in exits {
            if !holding.get(lock).is_some_and(|h| h.contains(&exit.0)) {
                releasing.entry(lock).or_default().push(exit);
            }
        }
    }
    let mut out = Vec::new();
    for (acquire, exits) in &held {
        let Some(released) = released.get(acquire) else {
            continue;
        };
        let lock = &exits[0].0;
        // Counted by lock, whichever call took it (`down_read()`, or on the slow path
        // `up_read()`, `down_write()`, `downgrade_write()`): a lock held on every exit is what
        // the function is for.
        let released_by_lock = releasing.get(lock.as_str()).map_or(&[][..], |r| &r[..]);
        if released_by_lock.is_empty() {
            continue;
        }
        if entered_held.contains(lock) || annotated.iter().any(|a| same_lock(lock, a)) {
            continue;
        }
        // A pointer returned by a function that returns pointers is its success value.
        let success =
            |r: Returns| r == Returns::Success || (r == Returns::Unknown && returns_pointer);
        // Released only where the function fails, and kept wherever it succeeds: the
        // function's job is to take the lock and hand it to its caller (`foo_access_get()`
        // returns 0 holding it, `__trans_begin()`, a lookup that returns an object holding its
        // lock and NULL or an ERR_PTR after releasing it), and none of its own paths says
        // otherwise. Success that is not known (`return err;` right after a call) is not enough.
        // The function's last statement is its normal way out: a function whose normal way
        // out releases the lock and that returns early holding it (`return 0;` from inside a
        // lookup loop) deviates, whatever the early return says.
        // A release helper in the same file (`foo_put_ownership()`) says so too.
        // When paths that keep the lock also leave there, the last statement says nothing.
        let kept_at_main = holding
            .get(lock.as_str())
            .is_some_and(|h| h.iter().any(|e| Some(e.ret) == main_exit));
        // A function that returns objects hands the lock over with the object it found (a
        // seq_file iterator's start, lookup-and-lock) wherever it finds it.
        let helper = released_by_lock.iter().all(|(_, r)| *r == Returns::Error)
            && (kept_at_main
                || returns_pointer
                || !released_by_lock
                    .iter()
                    .any(|(e, _)| Some(e.ret) == main_exit && e.goto.is_none())
                || has_release_helper(lock))
            && held
                .values()
                .flatten()
                .filter(|(l, _, _)| l == lock)
                .all(|(_, _, r)| success(*r));
        if helper {
            continue;
        }
        // A function returning objects that releases the lock only when it fails hands the
        // lock over with each object it returns: only a failure that keeps it deviates.
        let errors_release = returns_pointer && released.iter().all(|(_, r)| *r == Returns::Error);
        out.extend(
            exits
                .iter()
                // `return f(...)` with the lock held hands it to `f`, which may release it
                // (`return chtls_pt_recvmsg(...)`): the callee decides, not this function.
                .filter(|(_, exit, _)| !returns_call(exit) && !handed(*acquire, exit))
                .filter(|(_, _, r)| !errors_release || *r == Returns::Error)
                // A counting semaphore kept on a path that does not fail is often a token that
                // another context gives back (`up()` in an I/O completion or a resume
                // callback): only a failure that keeps it deviates.
                .filter(|(_, _, r)| !is_semaphore(*acquire) || *r == Returns::Error)
                .map(|(lock, exit, _)| (lock.clone(), *acquire, exit.clone())),
        );
    }
    out
}

/// True when the comment block right above the function says it runs with a lock held or
/// returns holding one ("Called with desc->iuspin locked", "Context: ncm->lock held", "we
/// return false, having already taken the dentry lock"): the lock is the caller's business.
fn documented_as_holding(ctx: &Context) -> bool {
    let mut comments = String::new();
    let mut below = ctx.function.start_position().row;
    let mut node = ctx.function.prev_sibling();
    // Only a block that ends on the line above the function (or above the previous comment).
    while let Some(n) =
        node.filter(|n| n.kind_name() == "comment" && n.end_position().row + 1 >= below)
    {
        comments.insert_str(0, ctx.text(n));
        below = n.start_position().row;
        node = n.prev_sibling();
    }
    let comments = comments.to_lowercase();
    let words: Vec<&str> = comments
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let about_a_lock = words.iter().any(|w| {
        w.contains("lock") || w.contains("mutex") || w.contains("sem") || w.contains("spin")
    });
    // "held", "locked", "called with", "already taken", "must hold", "caller holds", unless
    // negated ("without holding", "not held").
    let held = words.windows(2).enumerate().any(|(i, pair)| {
        let negated = i > 0 && matches!(words[i - 1], "not" | "without" | "never");
        let hit = matches!(pair[1], "held" | "locked")
            && !matches!(pair[0], "not" | "without" | "never")
            || matches!(
                pair,
                ["called", "with"] | ["already", "taken"] | ["must", "hold"] | ["caller", "holds"]
            );
        hit && !negated
    });
    // "Must be called with interrupts enabled and the lock not held": what it says of the lock
    // is that it is not held.
    let denied = words.windows(2).any(|pair| {
        matches!(pair[0], "not" | "never") && matches!(pair[1], "held" | "locked" | "holding")
    });
    about_a_lock && held && !denied
}

/// True when a comment between the acquisition and the exit says the lock was let go by
/// something other than an explicit release right after the comment ("drm_gem_handle_create_tail
/// unlocks dev->object_name_lock", "The socket has been unlocked", "has unlocked the mutex, so
/// skip that"): the code states what a callee in another file does.
fn comment_says_released(ctx: &Context, acquire: ByteRange, exit: ByteRange) -> bool {
    any_node(ctx.function, |node| {
        if node.end_byte() <= acquire.end || node.start_byte() >= exit.end {
            return Some(false);
        }
        if node.kind_name() != "comment" {
            return None;
        }
        if node.start_byte() < acquire.end {
            return Some(false);
        }
        let said = ctx.text(node).to_lowercase();
        let says = [
            "unlocks",
            "unlocked",
            "releases the",
            "released",
            "drops the",
            "dropped",
        ]
        .iter()
        .any(|w| said.contains(w))
            && ![
                "not unlocked",
                "not released",
                "not dropped",
                "must be released",
                "must be unlocked",
            ]
            .iter()
            .any(|w| said.contains(w));
        if !says {
            return Some(false);
        }
        // A comment about the release the next statement makes is not news.
        let explicit = next_code_sibling(node).is_some_and(|n| {
            let t = ctx.text(n).trim_start();
            t.contains("unlock") || t.starts_with("up") || t.contains("release")
        });
        Some(!explicit)
    })
}

/// The range of the function's last statement when it is a `return` (how the walk names that
/// exit), or of its closing brace when the function falls off its end.
fn main_exit(ctx: &Context) -> Option<ByteRange> {
    let body = ctx.function.field("body")?;
    let mut cursor = body.walk();
    let last = body
        .named_children(&mut cursor)
        .filter(|n| n.kind_name() != "comment")
        .last()?;
    if last.kind_name() == "return_statement" {
        return Some(ByteRange::of(last));
    }
    let brace = body.child(body.child_count().checked_sub(1)?)?;
    Some(ByteRange::of(brace))
}

fn check(ctx: &Context) -> Vec<Candidate> {
    if keeps_lock_by_design(ctx) || documented_as_holding(ctx) {
        return Vec::new();
    }
    let facts = ctx.facts_if(|i| !flow::locks_paired_in_line(i, ctx.source));
    let annotated = annotated_locks(ctx);
    let mut out = unheld_releases(ctx, &facts, &annotated);
    let returns_pointer = declarations::return_type(ctx.function, ctx.source).1;
    for (lock, acquire, exit) in deviant(
        facts,
        &annotated,
        returns_pointer,
        main_exit(ctx),
        |lock: &str| release_helper_in_file(ctx, lock),
        |acquire: ByteRange| {
            ctx.node_at(acquire)
                .and_then(|call| callee_name(call, ctx.source))
                .is_some_and(|name| {
                    matches!(
                        name,
                        "down"
                            | "down_interruptible"
                            | "down_killable"
                            | "down_trylock"
                            | "down_timeout"
                    )
                })
        },
        |exit: &Exit| {
            // `return ERR_PTR(-EINVAL);` only makes the value: no callee gets the lock.
            ctx.node_at(exit.ret)
                .filter(|n| n.kind_name() == "return_statement")
                .and_then(|n| n.named_child(0))
                .map(crate::analysis::syntax::strip_parens)
                .filter(|v| v.kind_name() == "call_expression")
                .is_some_and(|call| {
                    !matches!(
                        callee_name(call, ctx.source),
                        Some("ERR_PTR" | "ERR_CAST" | "PTR_ERR" | "PTR_ERR_OR_ZERO")
                    )
                })
        },
    ) {
        let Some(call) = ctx.node_at(acquire) else {
            continue;
        };
        if comment_says_released(ctx, acquire, exit.ret) {
            continue;
        }
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
            if statement.kind_name() == "compound_statement" {
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
            severity: None,
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

/// Releases on a path that jumped from before the function first takes the lock to a label
/// that releases it (`goto out_unlock` from a check made before `mutex_lock()`). The function's
/// own code states what the lock is to it: it takes the lock itself and no path of it returns
/// holding it, so a path that did not take it has nothing to release, and the release unlocks
/// a lock this path does not hold. Locks its annotations name, and functions whose comment
/// says they run with a lock held, were set aside before.
fn unheld_releases(ctx: &Context, facts: &[Fact], annotated: &[String]) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut seen: HashSet<ByteRange> = HashSet::new();
    for fact in facts {
        let Fact::EnteredHeld { lock, at } = fact else {
            continue;
        };
        // A lock named through a call (`&get_qhp(...)->lock`) may be another object each time.
        if lock.contains('(') || annotated.iter().any(|a| same_lock(lock, a)) || !seen.insert(*at) {
            continue;
        }
        let first_acquire = facts
            .iter()
            .filter_map(|f| match f {
                Fact::LockReleased {
                    lock: l, acquire, ..
                } if l == lock => Some(*acquire),
                _ => None,
            })
            .min_by_key(|a| a.start);
        let kept = facts
            .iter()
            .any(|f| matches!(f, Fact::LockHeld { lock: l, .. } if l == lock));
        let Some(first_acquire) = first_acquire.filter(|_| !kept) else {
            continue;
        };
        let taker = ctx
            .node_at(first_acquire)
            .and_then(|c| callee_name(c, ctx.source))
            .unwrap_or("the lock call");
        // A lock that may not have been taken (`mutex_trylock()`, `down_interruptible()`)
        // makes paths this walk does not tell apart.
        if ["try", "interruptible", "killable"]
            .iter()
            .any(|w| taker.contains(w))
        {
            continue;
        }
        // The label the release follows, and a jump to it made before the first acquisition;
        // the release is made whatever the jump's path holds (`out: mutex_unlock(...)`, not
        // `out: if (locked) mutex_unlock(...)`).
        let Some((label, name)) = label_before(ctx, at.start) else {
            continue;
        };
        if label.start < first_acquire.end || !unconditional_after(ctx, label, *at) {
            continue;
        }
        let Some(jump) = gotos_to(ctx, &name)
            .into_iter()
            .find(|g| g.end <= first_acquire.start)
        else {
            continue;
        };
        // A call before the jump that may have taken the lock: `mutex_lock_interruptible()`,
        // or a function of the file that takes a lock and may return holding it.
        if may_lock_before(ctx, jump.start) {
            continue;
        }
        let releaser = ctx
            .node_at(*at)
            .and_then(|c| callee_name(c, ctx.source))
            .unwrap_or("the release");
        out.push(Candidate {
            severity: None,
            range: jump,
            message: Message::new()
                .text(format!("`goto {name}` jumps to {releaser}(`{lock}`) at "))
                .line_of(at.start)
                .text(format!(" before {taker}() at "))
                .line_of(first_acquire.start)
                .text(" takes the lock: this path releases a lock it does not hold"),
            related: vec![
                Related {
                    range: *at,
                    message: Message::new().text(format!("`{lock}` is released here")),
                },
                Related {
                    range: first_acquire,
                    message: Message::new()
                        .text(format!("the function takes `{lock}` here, after the jump")),
                },
            ],
            fixes: Vec::new(),
        });
    }
    out
}

/// True when the code from the label at `label` reaches the call at `at` on every path: the
/// call's statement is the label's own or follows it in the same block, inside no `if`, loop
/// or `switch`, and no statement between them can leave.
fn unconditional_after(ctx: &Context, label: ByteRange, at: ByteRange) -> bool {
    let Some(labeled) = ctx.node_at(label) else {
        return false;
    };
    let Some(mut statement) = ctx.node_at(at) else {
        return false;
    };
    // Up from the call to the statement that sits in the label's block, or in the label.
    let block = labeled.parent();
    loop {
        let Some(parent) = statement.parent() else {
            return false;
        };
        if parent.id() == labeled.id() || Some(parent.id()) == block.map(|b| b.id()) {
            break;
        }
        if matches!(
            parent.kind_name(),
            "if_statement"
                | "else_clause"
                | "for_statement"
                | "while_statement"
                | "do_statement"
                | "switch_statement"
                | "case_statement"
                | "conditional_expression"
                | "binary_expression"
                | "labeled_statement"
                | "compound_statement"
        ) {
            return false;
        }
        statement = parent;
    }
    // Between the label's statement and the release's, nothing that leaves or decides.
    let plain = |n: tree_sitter::Node| {
        matches!(
            n.kind_name(),
            "expression_statement" | "comment" | "declaration"
        )
    };
    let mut next = Some(labeled);
    while let Some(n) = next {
        if n.id() == statement.id() || n.start_byte() >= statement.start_byte() {
            return true;
        }
        // The label's own statement (`out: foo(x);`), when the release comes after it.
        let decides = if n.id() == labeled.id() {
            labeled.named_child(1).is_some_and(|s| !plain(s))
        } else {
            !plain(n)
        };
        if decides {
            return false;
        }
        next = n.next_named_sibling();
    }
    false
}

/// True when a call that starts before `offset` in the function may take a lock: a lock call
/// of any kind, or a call to a function of the file that makes one.
fn may_lock_before(ctx: &Context, offset: usize) -> bool {
    let calls = |node: tree_sitter::Node, limit: usize| {
        let mut names = Vec::new();
        any_node(node, |n| {
            if n.start_byte() >= limit {
                return Some(false);
            }
            if n.kind_name() == "call_expression" {
                names.extend(callee_name(n, ctx.source));
            }
            None
        });
        names
    };
    let before = calls(ctx.function, offset);
    before.iter().any(|name| takes_lock(name))
        || another_function(ctx, |f| {
            function_name(f).is_some_and(|n| before.contains(&ctx.text(n)))
                && calls(f, usize::MAX).iter().any(|name| takes_lock(name))
        })
}

/// True when `test` accepts a function of the file other than the one checked.
fn another_function(ctx: &Context, mut test: impl FnMut(tree_sitter::Node) -> bool) -> bool {
    any_node(crate::analysis::syntax::root(ctx.function), |node| {
        (node.kind_name() == "function_definition")
            .then(|| node.id() != ctx.function.id() && test(node))
    })
}

/// The last label of the function that starts before `offset`, with its name.
fn label_before(ctx: &Context, offset: usize) -> Option<(ByteRange, String)> {
    let mut found: Option<(ByteRange, String)> = None;
    any_node(ctx.function, |node| {
        if node.start_byte() >= offset {
            return Some(false);
        }
        if node.kind_name() == "labeled_statement"
            && found
                .as_ref()
                .is_none_or(|(r, _)| r.start < node.start_byte())
        {
            if let Some(label) = node.field("label") {
                found = Some((ByteRange::of(node), ctx.text(label).to_owned()));
            }
        }
        None
    });
    found
}

/// The `goto name;` statements of the function, in source order.
fn gotos_to(ctx: &Context, name: &str) -> Vec<ByteRange> {
    let mut out = Vec::new();
    any_node(ctx.function, |node| {
        if node.kind_name() == "goto_statement"
            && node.field("label").is_some_and(|l| ctx.text(l) == name)
        {
            out.push(ByteRange::of(node));
        }
        None
    });
    out.sort_by_key(|r| r.start);
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

/// True when another function defined in the same file releases `lock` (the same fields of
/// the same kind of object, or the same global) and never takes it: the release half of an
/// acquire/release pair.
fn release_helper_in_file(ctx: &Context, lock: &str) -> bool {
    // The last field names the lock (`->lock`, `.mutex`); a global is named whole.
    let fields = |key: &str| {
        key.rfind(['>', '.'])
            .map_or_else(|| key.to_owned(), |at| key[at..].to_owned())
    };
    let wanted = fields(lock);
    another_function(ctx, |function| {
        let (mut releases, mut takes) = (false, false);
        any_node(function, |n| {
            if n.kind_name() == "call_expression" {
                let name = callee_name(n, ctx.source).unwrap_or("");
                let arg = call_arguments(n).first().map(|a| squash(ctx.text(*a)));
                if arg.is_some_and(|a| fields(&a) == wanted) {
                    releases |= name.contains("unlock") || name.starts_with("up");
                    takes |= takes_lock(name);
                }
            }
            None
        });
        releases && !takes
    })
}
