//! refcount-leak: a jump out of a node iterator's loop keeps the reference the iterator holds on
//! its cursor; an error return keeps a looked-up node the function puts on other paths (the
//! path walk's `Unreleased` facts, from the lookups and puts of this rule's query).

use crate::analysis::syntax::Fields as _;
use tree_sitter::Node;

use super::{held_at_error_return, insert_before, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Related, Severity};
use crate::analysis::flow::{Exit, Fact};
use crate::analysis::syntax::{self, call_arguments, callee_name, strip_parens};

pub const RULE: Rule = Rule {
    id: "refcount-leak",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "A `break`, `return` or `goto` leaves a device-tree or firmware node iterator \
              (`for_each_child_of_node()` and its kin) without dropping the reference the \
              iterator holds on its cursor; or a node a lookup returned (`of_parse_phandle()`, \
              `of_get_child_by_name()`, ...) is not put on an error return where the function \
              puts it on another path.",
    why: "Each step of the iterator takes a reference on the node it hands out and drops the \
          one of the step before; only running to the end drops the last one (the macros' own \
          comments: \"when breaking out of the loop, of_node_put(child) has to be called \
          manually\"). A jump out of the loop keeps the reference of the node it stopped at. \
          Before the jump the path neither drops it nor keeps the node (stores it, returns it, \
          takes a reference of its own), and the code after the loop never names the cursor \
          again: the node can never be freed. A lookup's node is reported only where the \
          function's own code puts it on another path after the lookup, and the path at hand \
          neither puts, stores nor returns it.",
    how_to_fix: "Call `of_node_put(child)` (`fwnode_handle_put(child)` for firmware nodes) \
                 before leaving the loop, or use the iterator's `_scoped` form, which drops it \
                 itself.",
    query: include_str!("../../../queries/c/refcount-leak.scm"),
    check,
};

/// Iterator macros that hold a reference on their cursor while the loop runs: the name, which
/// argument is the cursor, and the call that drops it (include/linux/of.h, of_graph.h,
/// property.h). The `_scoped` forms drop it themselves and are not here.
const ITERATORS: &[(&str, usize, &str)] = &[
    ("for_each_child_of_node", 1, "of_node_put"),
    ("for_each_available_child_of_node", 1, "of_node_put"),
    ("for_each_reserved_child_of_node", 1, "of_node_put"),
    ("for_each_endpoint_of_node", 1, "of_node_put"),
    ("for_each_node_by_name", 0, "of_node_put"),
    ("for_each_node_by_type", 0, "of_node_put"),
    ("for_each_compatible_node", 0, "of_node_put"),
    ("for_each_matching_node", 0, "of_node_put"),
    ("for_each_matching_node_and_match", 0, "of_node_put"),
    ("for_each_node_with_property", 0, "of_node_put"),
    ("for_each_of_cpu_node", 0, "of_node_put"),
    ("device_for_each_child_node", 1, "fwnode_handle_put"),
    ("fwnode_for_each_child_node", 1, "fwnode_handle_put"),
    (
        "fwnode_for_each_available_child_node",
        1,
        "fwnode_handle_put",
    ),
    ("fwnode_graph_for_each_endpoint", 1, "fwnode_handle_put"),
];

/// Calls that keep a node for the caller: a reference of its own, or a pointer taken out of a
/// `__free()` variable's care.
const KEEPS: &[&str] = &[
    "of_node_get",
    "fwnode_handle_get",
    "no_free_ptr",
    "return_ptr",
];

/// Calls that give the same node as another type (`to_of_node(fwnode)`, `of_fwnode_handle(np)`).
const VIEWS: &[&str] = &[
    "to_of_node",
    "of_fwnode_handle",
    "of_node_get",
    "fwnode_handle_get",
];

/// One iterator loop: the macro's name (where it is written), its cursor and what drops it.
struct Iterator<'t> {
    node: Node<'t>,
    name: ByteRange,
    macro_name: &'static str,
    cursor: String,
    put: &'static str,
}

fn iterator<'t>(ctx: &Context<'t>, node: Node<'t>) -> Option<Iterator<'t>> {
    let (word, args) = syntax::iterator_macro(node, ctx.source)?;
    let &(macro_name, at, put) = ITERATORS.iter().find(|i| i.0 == word)?;
    let start = node.start_byte();
    let cursor = args.get(at).filter(|a| a.kind_name() == "identifier")?;
    Some(Iterator {
        node,
        name: ByteRange::new(start, start + word.len()),
        macro_name,
        cursor: ctx.text(*cursor).to_owned(),
        put,
    })
}

/// True when `node` names the identifier `name` anywhere inside it.
fn mentions(ctx: &Context, node: Node, name: &str) -> bool {
    syntax::any_node(node, |n| {
        (n.kind_name() == "identifier").then(|| ctx.text(n) == name)
    })
}

/// True when `node` holds a step that drops the cursor's reference or keeps the node: a put
/// (any call with "put" in its name given the cursor), a reference of its own, or the node
/// stored somewhere (`found = child`, `priv->np = child`).
fn drops_or_keeps(ctx: &Context, node: Node, it: &Iterator) -> bool {
    let is_cursor = |n: Node| {
        let n = strip_parens(n);
        n.kind_name() == "identifier" && ctx.text(n) == it.cursor
    };
    // `node = to_of_node(fwn)`: the same node under another name, which the code may put or
    // keep later.
    let is_cursor_or_view = |n: Node| {
        let n = strip_parens(n);
        is_cursor(n)
            || (n.kind_name() == "call_expression"
                && callee_name(n, ctx.source).is_some_and(|f| VIEWS.contains(&f))
                && call_arguments(n).into_iter().any(is_cursor))
    };
    syntax::any_node(node, |n| match n.kind_name() {
        "call_expression" => {
            let name = callee_name(n, ctx.source).unwrap_or("");
            let given = call_arguments(n).into_iter().any(is_cursor);
            (given && (name == it.put || name.contains("put") || KEEPS.contains(&name)))
                .then_some(true)
        }
        "assignment_expression" => n
            .field("right")
            .filter(|r| is_cursor_or_view(*r))
            .map(|_| true),
        "init_declarator" => n
            .field("value")
            .filter(|v| is_cursor_or_view(*v))
            .map(|_| true),
        _ => None,
    })
}

/// The statements that leave `it`'s loop from inside its body: `break` (not inside a nested
/// loop or `switch`), `return`, and `goto` to a label outside the loop.
fn exits<'t>(ctx: &Context<'t>, it: &Iterator<'t>) -> Vec<Node<'t>> {
    let Some(body) = it.node.field("body") else {
        return Vec::new();
    };
    let labels_inside: Vec<&str> = {
        let mut out = Vec::new();
        syntax::any_node(body, |n| {
            if n.kind_name() == "labeled_statement" {
                if let Some(label) = n.field("label") {
                    out.push(ctx.text(label));
                }
            }
            None
        });
        out
    };
    let mut out = Vec::new();
    // (node, inside a nested loop or switch)
    let mut stack = vec![(body, false)];
    while let Some((node, nested)) = stack.pop() {
        match node.kind_name() {
            "break_statement" if !nested => out.push(node),
            "return_statement" => out.push(node),
            "goto_statement" => {
                let label = node.field("label").map(|l| ctx.text(l));
                if label.is_some_and(|l| !labels_inside.contains(&l)) {
                    out.push(node);
                }
            }
            _ => {
                let inner = nested
                    || matches!(
                        node.kind_name(),
                        "for_statement" | "while_statement" | "do_statement" | "switch_statement"
                    ) && node != body;
                let mut cursor = node.walk();
                let mut after_iterator = false;
                for child in node.named_children(&mut cursor) {
                    stack.push((child, inner || after_iterator));
                    after_iterator = unmasked_iterator(ctx, child);
                }
            }
        }
    }
    out.sort_by_key(|n| n.start_byte());
    out
}

/// An iterator macro whose body starts on the next line (`of_for_each_phandle(...)` then an
/// `if` under it): the grammar reads a statement missing its `;`, and the statement after it
/// is the loop's body.
fn unmasked_iterator(ctx: &Context, node: Node) -> bool {
    node.kind_name() == "expression_statement"
        && !ctx.text(node).trim_end().ends_with(';')
        && node
            .named_child(0)
            .filter(|c| c.kind_name() == "call_expression")
            .and_then(|c| callee_name(c, ctx.source))
            .is_some_and(|name| name.contains("for_each"))
}

/// True when the path to `exit` inside the loop drops or keeps the cursor first: a statement
/// before it in its block, or in any block around it up to the loop body.
fn handled_before(ctx: &Context, exit: Node, it: &Iterator) -> bool {
    let body = it.node.field("body");
    let mut node = exit;
    while let Some(parent) = node.parent() {
        if parent.kind_name() == "compound_statement" {
            let mut cursor = parent.walk();
            let before = parent
                .named_children(&mut cursor)
                .take_while(|s| s.start_byte() < node.start_byte());
            for statement in before {
                if drops_or_keeps(ctx, statement, it) {
                    return true;
                }
            }
        }
        if Some(parent) == body || parent == it.node {
            return false;
        }
        node = parent;
    }
    false
}

/// True when the cursor is declared with a cleanup (`__free(device_node)`): the compiler drops it.
fn freed_by_scope(ctx: &Context, it: &Iterator) -> bool {
    syntax::any_node(ctx.function, |n| {
        if n.kind_name() != "declaration" {
            return None;
        }
        let text = ctx.text(n);
        Some(text.contains("__free(") && mentions(ctx, n, &it.cursor))
    })
}

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for fact in ctx.facts() {
        if let Fact::Unreleased {
            acquire,
            release,
            exit,
            ..
        } = fact
        {
            out.extend(unput(ctx, acquire, release, &exit));
        }
    }
    let puts: Vec<Node> = ctx.matches.iter().filter_map(|m| m.get("put")).collect();
    for m in &ctx.matches {
        let Some(it) = m.get("iterator").and_then(|n| iterator(ctx, n)) else {
            continue;
        };
        if freed_by_scope(ctx, &it) {
            continue;
        }
        // The code after the loop names the cursor (puts it, tests it, hands it on): what the
        // jump kept is that code's business.
        let used_after = {
            let end = it.node.end_byte();
            syntax::any_node(ctx.function, |n| {
                if n.end_byte() <= end {
                    return Some(false);
                }
                (n.start_byte() >= end && n.kind_name() == "identifier")
                    .then(|| ctx.text(n) == it.cursor)
            })
        };
        for exit in exits(ctx, &it) {
            let leaves_function = exit.kind_name() == "return_statement";
            if !leaves_function && used_after {
                continue;
            }
            if leaves_function
                && exit
                    .named_child(0)
                    .is_some_and(|value| mentions(ctx, value, &it.cursor))
            {
                continue;
            }
            if handled_before(ctx, exit, &it) {
                continue;
            }
            out.push(candidate(ctx, &it, exit, &puts));
        }
    }
    out
}

/// A node reference a lookup returned, still held at an error return, where another path of
/// the function puts it.
fn unput(ctx: &Context, acquire: ByteRange, release: ByteRange, exit: &Exit) -> Option<Candidate> {
    let lookup = ctx.node_at(acquire)?;
    let looker = callee_name(lookup, ctx.source)?;
    // The local the walk held it in (`np = of_parse_phandle(...)`, `struct device_node *np =`).
    let var = ctx.text(syntax::assigned_local(lookup)?);
    let put_call = ctx.node_at(release)?;
    let put = callee_name(put_call, ctx.source)?;
    Some(held_at_error_return(
        ctx,
        exit,
        [
            Related {
                range: acquire,
                message: Message::new().text(format!(
                    "{looker}() returns `{var}` holding a reference here"
                )),
            },
            Related {
                range: release,
                message: Message::new().text(format!("another path drops it here with {put}()")),
            },
        ],
        format!("{put}({var});"),
        format!("Call {put}({var}) before leaving"),
        Message::new()
            .text(format!("`{var}` returned by {looker}() at "))
            .line_of(acquire.start)
            .text(format!(" is not put ({put}()) ")),
    ))
}

fn candidate(ctx: &Context, it: &Iterator, exit: Node, puts: &[Node]) -> Candidate {
    let cursor = &it.cursor;
    let word = match exit.kind_name() {
        "break_statement" => "break",
        "return_statement" => "return",
        _ => "goto",
    };
    let mut related = vec![Related {
        range: it.name,
        message: Message::new().text(format!(
            "{}() holds a reference on `{cursor}` for each step here",
            it.macro_name
        )),
    }];
    // Another exit of the same loop that drops it: the function's own code says how.
    let body = it.node.byte_range();
    if let Some(put) = puts.iter().find(|p| {
        body.contains(&p.start_byte())
            && call_arguments(**p)
                .first()
                .is_some_and(|a| ctx.text(strip_parens(*a)) == cursor)
    }) {
        related.push(Related {
            range: ByteRange::of(*put),
            message: Message::new().text("another exit drops it here"),
        });
    }
    let call = format!("{}({cursor});", it.put);
    let fixes = insert_before(
        ctx.source,
        exit,
        std::slice::from_ref(&call),
        format!("Call {}({cursor}) before leaving the loop", it.put),
    )
    .into_iter()
    .collect();
    Candidate {
        severity: None,
        range: ByteRange::of(exit),
        message: Message::new()
            .text(format!(
                "this {word} leaves the {}() loop of ",
                it.macro_name
            ))
            .line_of(it.name.start)
            .text(format!(
                " without {}({cursor}): the reference the iterator holds on `{cursor}` is kept",
                it.put
            )),
        related,
        fixes,
    }
}
