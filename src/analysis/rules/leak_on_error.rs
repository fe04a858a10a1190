//! leak-on-error: memory the function owns is neither freed nor handed on when it returns an error.

use super::{
    braced_branch, exit_message, exit_related, held_at_error_return, insert_before, Candidate,
    Context, Rule,
};
use crate::analysis::finding::{ByteRange, Edit, Fix, Message, Related, Severity};
use crate::analysis::flow::{Fact, FlowInputs};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{self, strip_parens};
use crate::analysis::syntax::{call_arguments, callee_name};

pub const RULE: Rule = Rule {
    id: "leak-on-error",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "Memory allocated in the function (or a stream it opened) is not freed on an early \
              error return, or is never freed, stored or handed on at all; `p = realloc(p, n)` \
              overwrites the only pointer to a block that stays allocated when the call fails; \
              or a clock, runtime-PM reference, IRQ or \
              device reference the function releases on other paths is kept on an error return.",
    why: "The pointer is the only reference to the allocation: it is a local variable, it was not \
          stored in a struct, put on a list or passed to a function that keeps or releases what \
          it is given (`list_add`, `*_register`, `put_device`, `fput`, a call given a destructor), \
          and it is not returned. A function it was only lent to (`foo_setup(&p->table)`) did \
          not take it: the function itself returns or stores it later. Once the function returns \
          the error, nobody can free it.",
    how_to_fix: "Free it before the return, or jump to the unwinding label that frees it \
                 (`goto err_free;`).",
    query: include_str!("../../../queries/c/leak-on-error.scm"),
    check,
};

/// True when a comment on the exit's line or the line above it says who frees the memory, or
/// why it is not freed ("card is freed by error handler", "the queue owns it now", "it may be
/// unsafe to free 'mem'"): the code states it.
fn comment_says_freed(ctx: &Context, exit: ByteRange) -> bool {
    let Some(statement) = ctx.node_at(exit) else {
        return false;
    };
    let row = statement.start_position().row;
    syntax::any_node(ctx.function, |node| {
        let (start, end) = (node.start_position().row, node.end_position().row);
        if end + 1 < row || start > row {
            return Some(false);
        }
        if node.kind_name() != "comment" {
            return None;
        }
        let said = ctx.text(node).to_lowercase();
        Some(
            // "freed", "frees", "unsafe to free".
            ["free", "released", "releases", "owns", "ownership"]
                .iter()
                .any(|w| said.contains(w)),
        )
    })
}

/// A clock left enabled, a runtime-PM reference or an IRQ kept, at an error return, where
/// another path of the function releases it.
fn unreleased(
    ctx: &Context,
    key: &str,
    acquire: ByteRange,
    release: ByteRange,
    exit: &crate::analysis::flow::Exit,
) -> Option<Candidate> {
    let taken = ctx.node_at(acquire)?;
    let taker = callee_name(taken, ctx.source)?;
    // The resource as the code names it where it is taken (`key` is the walk's canonical name).
    let named = call_arguments(taken)
        .get(crate::analysis::flow::resource_argument(taker))
        .map(|a| syntax::squash(ctx.text(*a)))
        .unwrap_or_else(|| key.to_owned());
    let key = named.as_str();
    let release_call = ctx.node_at(release)?;
    let releaser = callee_name(release_call, ctx.source)?;
    Some(held_at_error_return(
        ctx,
        exit,
        [
            Related {
                range: acquire,
                message: Message::new().text(format!("`{key}` is taken here by {taker}()")),
            },
            Related {
                range: release,
                message: Message::new()
                    .text(format!("another path releases it here with {releaser}()")),
            },
        ],
        format!("{};", ctx.text(release_call)),
        format!("Call {releaser}() before leaving"),
        Message::new()
            .text(format!("`{key}` taken by {taker}() at "))
            .line_of(acquire.start)
            .text(format!(" is not released ({releaser}()) ")),
    ))
}

/// `p = realloc(p, n)` where `p` is the only pointer to a block: when the call fails it
/// returns NULL and leaves the block allocated, and the assignment overwrites that pointer. A
/// local counts when its value comes from an allocation of this function (a copy of a pointer
/// kept elsewhere, `state = *statep`, is not the only one); a field or global counts unless the
/// call cannot fail (`__GFP_NOFAIL`) or the function saved the old pointer under another name
/// first (`old = s->tab; s->tab = krealloc(s->tab, ...); if (!s->tab) s->tab = old;`).
fn realloc_over_itself(ctx: &Context, m: &super::Match) -> Option<Candidate> {
    let (assign, target, arg, name) = (
        m.get("realloc")?,
        strip_parens(m.get("realloc.target")?),
        m.get("realloc.arg")?,
        m.get("fn")?,
    );
    let target_text = syntax::squash(ctx.text(target));
    if target_text != syntax::squash(ctx.text(strip_parens(arg)))
        || ctx.text(assign).contains("__GFP_NOFAIL")
    {
        return None;
    }
    let owned = if target.kind_name() == "identifier" {
        let allocs = ctx.flow_inputs().allocs;
        last_value(ctx, assign, &target_text)
            .map(strip_parens)
            .is_some_and(|v| allocs.contains(&v.id()))
    } else {
        !copied_before(ctx, assign, &target_text)
    };
    if !owned {
        return None;
    }
    let name = ctx.text(name);
    Some(Candidate {
        severity: None,
        range: ByteRange::of(assign),
        message: Message::new().text(format!(
            "when {name}() fails it returns NULL and keeps the old block, whose only pointer \
             `{target_text}` is overwritten here: the block leaks"
        )),
        related: Vec::new(),
        fixes: Vec::new(),
    })
}

/// The value the plain variable `name` was last given by a statement before `at` (in the
/// blocks around it, nearest first): an assignment's right side, or a declaration's
/// initializer; `None` when it was declared without one or is not set there.
fn last_value<'t>(
    ctx: &Context<'t>,
    at: tree_sitter::Node<'t>,
    name: &str,
) -> Option<tree_sitter::Node<'t>> {
    let mut statement = at;
    while let Some(parent) = statement.parent() {
        if parent.kind_name() == "compound_statement" {
            let mut previous = statement.prev_named_sibling();
            while let Some(node) = previous {
                match node.kind_name() {
                    "declaration" => {
                        let mut cursor = node.walk();
                        let declared = node.named_children(&mut cursor).find(|d| {
                            syntax::declared_name(*d).is_some_and(|n| ctx.text(n) == name)
                        });
                        if let Some(d) = declared {
                            return syntax::assignment(d).map(|(_, value)| value);
                        }
                    }
                    "expression_statement" => {
                        let set = node
                            .named_child(0)
                            .and_then(syntax::assignment)
                            .filter(|(t, _)| ctx.text(strip_parens(*t)) == name);
                        if let Some((_, value)) = set {
                            return Some(value);
                        }
                    }
                    _ => {}
                }
                previous = node.prev_named_sibling();
            }
        }
        if parent.id() == ctx.function.id() {
            break;
        }
        statement = parent;
    }
    None
}

/// True when some assignment or initializer before `at` copies the value of `place` (squashed
/// text) into another name.
fn copied_before(ctx: &Context, at: tree_sitter::Node, place: &str) -> bool {
    syntax::any_node(ctx.function, |node| {
        if node.start_byte() >= at.start_byte() {
            return Some(false);
        }
        syntax::assignment(node)
            .filter(|(_, value)| syntax::squash(ctx.text(strip_parens(*value))) == place)
            .map(|_| true)
    })
}

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = ctx
        .matches
        .iter()
        .filter_map(|m| realloc_over_itself(ctx, m))
        .collect();
    for fact in ctx.facts() {
        if let Fact::Unreleased {
            key,
            acquire,
            release,
            exit,
        } = &fact
        {
            if !comment_says_freed(ctx, exit.decision()) {
                out.extend(unreleased(ctx, key, *acquire, *release, exit));
            }
            continue;
        }
        let Fact::Leak {
            var,
            alloc,
            exit,
            normal,
        } = fact
        else {
            continue;
        };
        let Some(call) = ctx.node_at(alloc) else {
            continue;
        };
        if comment_says_freed(ctx, exit.decision()) {
            continue;
        }
        let allocator = callee_name(call, ctx.source).unwrap_or("the allocator");
        let mut related = vec![Related {
            range: alloc,
            message: Message::new().text(format!("`{var}` is allocated here by {allocator}()")),
        }];
        let exit_word = if normal { "return" } else { "error return" };
        related.extend(exit_related(&exit, &format!("the {exit_word}")));
        let mut fixes: Vec<Fix> = ctx
            .node_at(exit.decision())
            .filter(|_| !normal)
            .and_then(|statement| jump_to_ladder(ctx, statement, &var, alloc.start))
            .into_iter()
            .collect();
        let inline = free_call(ctx, call, allocator, &var).and_then(|free| {
            let statement = ctx.node_at(exit.decision())?;
            insert_before(
                ctx.source,
                statement,
                &[free],
                format!("Free `{var}` before leaving"),
            )
        });
        // When the function already has an unwinding label for `var`, jumping there is the
        // kernel's way; the inline free is then offered too, but not preferred.
        fixes.extend(inline.map(|mut f| {
            f.preferred = fixes.is_empty();
            f
        }));
        out.push(Candidate {
            severity: None,
            range: exit.decision(),
            message: exit_message(
                ctx.source,
                Message::new()
                    .text(format!("`{var}` allocated at "))
                    .line_of(alloc.start)
                    .text(if normal {
                        " is not freed, stored or handed on, so it is lost "
                    } else {
                        " is not freed "
                    }),
                &exit,
                exit_word,
            ),
            related,
            fixes,
        });
    }
    out
}

/// The call that frees what `allocator` returned.
fn free_call(ctx: &Context, call: tree_sitter::Node, allocator: &str, var: &str) -> Option<String> {
    let free = match allocator {
        "kvmalloc" | "kvzalloc" | "kvcalloc" | "kvmalloc_array" | "vmemdup_user" => "kvfree",
        "vmalloc" | "vzalloc" | "vmalloc_array" | "vcalloc" => "vfree",
        "malloc" | "calloc" | "realloc" | "strdup" | "strndup" => "free",
        "fopen" | "fdopen" | "tmpfile" => "fclose",
        a if a.ends_with("alloc_skb") || a.ends_with("alloc_skb_ip_align") => "kfree_skb",
        "kmem_cache_alloc" | "kmem_cache_zalloc" => {
            let cache = call_arguments(call).into_iter().next()?;
            return Some(format!("kmem_cache_free({}, {var});", ctx.text(cache)));
        }
        _ => "kfree",
    };
    Some(format!("{free}({var});"))
}

/// One step of an unwinding ladder.
#[derive(Debug, PartialEq)]
enum Step {
    Label(String),
    Free(String),
    /// Anything else (an unlock, a call): right only where the path already runs it.
    Other,
}

/// What an unwinding ladder does from its label to its `return`.
struct Ladder<'t> {
    name: String,
    steps: Vec<Step>,
    /// The value it returns (`None` for a bare `return;`).
    returns: Option<tree_sitter::Node<'t>>,
}

impl Ladder<'_> {
    /// The steps run before reaching `label` (all of them when `label` is `None`), or `None`
    /// when the ladder does not reach that label.
    fn before(&self, label: Option<&str>) -> Option<&[Step]> {
        match label {
            None => Some(&self.steps),
            Some(label) => {
                let at = self
                    .steps
                    .iter()
                    .position(|s| *s == Step::Label(label.to_owned()))?;
                Some(&self.steps[..at])
            }
        }
    }
}

/// Reads the ladders of the function: for each label in the function body, the steps to the
/// first `return` (ladders that fall off the end or jump elsewhere are left out).
fn ladders<'t>(ctx: &Context<'t>, inputs: &FlowInputs<'t>) -> Vec<Ladder<'t>> {
    let Some(body) = ctx.function.field("body") else {
        return Vec::new();
    };
    let mut cursor = body.walk();
    let statements: Vec<_> = body.named_children(&mut cursor).collect();
    let mut out = Vec::new();
    for (i, start) in statements.iter().enumerate() {
        let Some(name) = start
            .field("label")
            .filter(|_| start.kind_name() == "labeled_statement")
        else {
            continue;
        };
        let mut steps = Vec::new();
        let mut returns = None;
        let mut ended = false;
        for statement in &statements[i..] {
            let mut node = *statement;
            while node.kind_name() == "labeled_statement" {
                if let Some(label) = node.field("label") {
                    steps.push(Step::Label(ctx.text(label).to_owned()));
                }
                let inner = node
                    .named_children(&mut node.walk())
                    .filter(|c| c.kind_name() != "statement_identifier")
                    .last();
                match inner {
                    Some(inner) => node = inner,
                    None => break,
                }
            }
            match node.kind_name() {
                "return_statement" => {
                    returns = node.named_child(0).filter(|n| n.kind_name() != "comment");
                    ended = true;
                    break;
                }
                "goto_statement" => break,
                "comment" | "labeled_statement" => {}
                _ => {
                    let freed = Some(node)
                        .filter(|n| n.kind_name() == "expression_statement")
                        .and_then(|n| n.named_child(0))
                        .map(strip_parens)
                        .and_then(|c| inputs.frees.get(&c.id()))
                        .map(|arg| strip_parens(*arg))
                        .filter(|arg| arg.kind_name() == "identifier");
                    steps.push(match freed {
                        Some(arg) => Step::Free(ctx.text(arg).to_owned()),
                        None => Step::Other,
                    });
                }
            }
        }
        if ended {
            out.push(Ladder {
                name: ctx.text(name).to_owned(),
                steps,
                returns,
            });
        }
    }
    out
}

/// True when `name` is assigned an allocation somewhere before `before` (so freeing it on a
/// path that reaches `before` frees either that allocation or NULL), judged by source order.
fn allocated_before(ctx: &Context, inputs: &FlowInputs, name: &str, before: usize) -> bool {
    let mut stack = vec![ctx.function];
    while let Some(node) = stack.pop() {
        if node.start_byte() >= before {
            continue;
        }
        if let Some((target, value)) = syntax::assignment(node) {
            let value = strip_parens(value);
            if ctx.text(target) == name
                && value.kind_name() == "call_expression"
                && inputs.allocs.contains(&value.id())
            {
                return true;
            }
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    false
}

/// `goto <label>` to an existing ladder that frees `var`, instead of the leaking exit.
fn jump_to_ladder(
    ctx: &Context,
    exit: tree_sitter::Node,
    var: &str,
    alloc_at: usize,
) -> Option<Fix> {
    let inputs = ctx.flow_inputs();
    // The steps a jump adds to the path must be frees only: of `var`, and of variables that
    // hold an allocation (or NULL) by then.
    let safe = |steps: &[Step]| {
        steps.contains(&Step::Free(var.to_owned()))
            && steps.iter().all(|s| match s {
                Step::Label(_) => true,
                Step::Free(f) => f == var || allocated_before(ctx, &inputs, f, exit.start_byte()),
                Step::Other => false,
            })
    };
    if alloc_at >= exit.start_byte() {
        return None;
    }
    let ladders = ladders(ctx, &inputs);
    match exit.kind_name() {
        // `return E;` becomes `goto L;` when the ladder returns the same value, or
        // `V = E; goto L;` when it returns a variable V.
        "return_statement" => {
            let value = exit.named_child(0).filter(|n| n.kind_name() != "comment");
            let same = |l: &Ladder| match (value, l.returns) {
                (Some(a), Some(b)) => syntax::squash(ctx.text(a)) == syntax::squash(ctx.text(b)),
                (None, None) => true,
                _ => false,
            };
            let ladder = ladders
                .iter()
                .filter(|l| l.before(None).is_some_and(safe))
                .find(|l| {
                    same(l)
                        || (value.is_some()
                            && l.returns.is_some_and(|r| r.kind_name() == "identifier"))
                })?;
            let lines = if same(ladder) {
                vec![format!("goto {};", ladder.name)]
            } else {
                vec![
                    format!("{} = {};", ctx.text(ladder.returns?), ctx.text(value?)),
                    format!("goto {};", ladder.name),
                ]
            };
            replace_statement(
                ctx,
                exit,
                &lines,
                format!("Jump to `{}`, which frees `{var}`", ladder.name),
            )
        }
        // `goto out;` becomes `goto err_free;` when err_free frees `var` and then runs into out.
        "goto_statement" => {
            let label = exit.field("label")?;
            let current = ctx.text(label);
            let ladder = ladders
                .iter()
                .find(|l| l.name != current && l.before(Some(current)).is_some_and(safe))?;
            Some(Fix {
                title: format!(
                    "Jump to `{}`, which frees `{var}` on the way to `{current}`",
                    ladder.name
                ),
                edits: vec![Edit {
                    range: ByteRange::of(label),
                    text: ladder.name.clone(),
                }],
                preferred: true,
            })
        }
        _ => None,
    }
}

/// Replaces a statement by one or more statements; a braceless branch gets braces in kernel
/// style (`if (x) {`).
fn replace_statement(
    ctx: &Context,
    statement: tree_sitter::Node,
    lines: &[String],
    title: String,
) -> Option<Fix> {
    let parent = statement.parent()?;
    let nl = syntax::newline(ctx.source);
    let edit = match parent.kind_name() {
        "compound_statement" | "labeled_statement" | "case_statement" => {
            let indent = syntax::indentation(ctx.source, statement.start_byte());
            Edit {
                range: ByteRange::of(statement),
                text: lines.join(&format!("{nl}{indent}")),
            }
        }
        _ if lines.len() == 1 => Edit {
            range: ByteRange::of(statement),
            text: lines[0].clone(),
        },
        "if_statement" | "else_clause" => braced_branch(ctx.source, statement, lines)?,
        _ => return None,
    };
    Some(Fix {
        title,
        edits: vec![edit],
        preferred: true,
    })
}
