//! A small path walk over one function body: it follows allocations, frees and locks through
//! `if`/`else`, loops, `switch` and `goto` unwinding ladders, and reports facts that the
//! resource rules turn into findings.
//!
//! The walk favours precision over recall. Where two paths disagree about a resource (freed on
//! one, not on the other) it forgets the resource instead of guessing, and it gives up on a
//! function whose paths it cannot follow (backward `goto`, a label inside a loop).

use crate::analysis::syntax::Fields as _;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use tree_sitter::Node;

use super::finding::ByteRange;
use super::summary::{self, LockSummaries};
use super::syntax::{self, call_arguments, callee_name, declared_name, strip_parens, text};

/// What a rule's query says about the calls of one function, by call node id.
#[derive(Default, Debug)]
pub struct FlowInputs<'t> {
    /// Calls whose result is memory the function owns.
    pub allocs: HashSet<usize>,
    /// Calls that free memory, with the argument that is freed.
    pub frees: HashMap<usize, Node<'t>>,
    /// Calls that use a pointer argument without keeping it (so it does not escape).
    pub borrows: HashSet<usize>,
    /// Calls that dereference their pointer arguments.
    pub derefs: HashSet<usize>,
    /// Calls that take a lock, with the lock argument (none for `rcu_read_lock()`).
    pub acquires: HashMap<usize, Option<Node<'t>>>,
    /// Calls that release a lock, with the lock argument (none for `rcu_read_unlock()`).
    pub releases: HashMap<usize, Option<Node<'t>>>,
    /// Calls that may take a lock, used as a condition: the lock argument, and whether the lock
    /// is held when the call returns non-zero (`mutex_trylock`) rather than zero
    /// (`mutex_lock_interruptible`).
    pub conditional_acquires: HashMap<usize, (Node<'t>, bool)>,
    /// Calls that take a resource other than memory, named by their first argument (a clock,
    /// an IRQ, a runtime-PM reference), and whether they can fail (returning non-zero when
    /// they did not take it).
    pub takes: HashMap<usize, bool>,
    /// Calls that release such a resource, named by their first argument.
    pub puts: HashSet<usize>,
    /// Calls that return a new reference (a device-tree node), or NULL when they found
    /// nothing: held by the local the result is assigned to, released by a `puts` call.
    pub lookups: HashSet<usize>,
}

/// Where a path leaves the function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exit {
    /// The `return` statement reached, or the closing brace when the path falls off the end.
    pub ret: ByteRange,
    /// The first `goto` of the path into an unwinding ladder, with its label.
    pub goto: Option<(ByteRange, String)>,
}

impl Exit {
    /// The statement where the path decided to leave: the `goto` if there was one.
    pub fn decision(&self) -> ByteRange {
        self.goto.as_ref().map_or(self.ret, |g| g.0)
    }
}

/// Something a resource rule may report.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fact {
    /// A local allocation that is neither freed nor handed on when an error is returned.
    Leak {
        var: String,
        alloc: ByteRange,
        exit: Exit,
        /// At a return that is not an error: the memory was never freed, lent or handed on,
        /// and nothing but a few plain buffer calls (`memcpy`, `strcpy`, `printf`) was given it.
        normal: bool,
    },
    /// A lock taken in this function and still held when the function returns.
    LockHeld {
        lock: String,
        acquire: ByteRange,
        exit: Exit,
        returns: Returns,
        /// Calls on the path, made holding the lock and given the lock.
        calls: Vec<ByteRange>,
    },
    /// A lock taken in this function and released again on a path before it returns: the
    /// sibling path that tells what the function means to do with the lock.
    LockReleased {
        lock: String,
        acquire: ByteRange,
        exit: Exit,
        returns: Returns,
        /// Calls on the path, made holding the lock and given the lock.
        calls: Vec<ByteRange>,
    },
    /// A lock released on a path where this function did not take it: the function is entered
    /// holding it (or a callee's annotation says it keeps it), so what it does with it is the
    /// caller's business, unless the function's own code says otherwise (see
    /// `lock_imbalance`). `at` is the release.
    EnteredHeld { lock: String, at: ByteRange },
    /// A resource other than memory (a clock enabled, a runtime-PM reference, an IRQ) taken in
    /// this function, still held at an error return, and released by the function on another
    /// path (`release`, the sibling that says the function owns it).
    Unreleased {
        key: String,
        acquire: ByteRange,
        release: ByteRange,
        exit: Exit,
    },
    /// A pointer used after it was freed on the same path.
    UseAfterFree {
        var: String,
        free: ByteRange,
        at: ByteRange,
    },
    /// A pointer freed twice on the same path.
    DoubleFree {
        var: String,
        first: ByteRange,
        second: ByteRange,
    },
    /// An allocation dereferenced before anything tested it for NULL.
    UncheckedUse {
        var: String,
        alloc: ByteRange,
        at: ByteRange,
    },
}

/// What a path returns, as far as the walk can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Returns {
    /// A negative number, NULL, an `ERR_PTR`, or an integer known to hold an error.
    Error,
    /// `return 0;`, or the end of the function reached (a `void` function's normal end).
    Success,
    /// Anything else: a bare `return;` before the end, a value the walk cannot classify.
    Unknown,
}

/// Walks `function` (a `function_definition` node) and returns the facts it found.
///
/// `declared` is what the function declares (`Declared::read` of the same function): the rules
/// each walk a function with their own inputs, and read its declarations once. `nodes` are the
/// body's named nodes (`syntax::named_nodes`, the body first).
pub fn analyze<'t>(
    function: Node<'t>,
    source: &str,
    inputs: &FlowInputs<'t>,
    declared: &Declared,
    nodes: &[(Node<'t>, usize)],
) -> Vec<Fact> {
    let Some(body) = function.field("body") else {
        return Vec::new();
    };
    let mut engine = Engine {
        source,
        inputs,
        body,
        labels: &declared.labels,
        locals: &declared.locals,
        int_locals: &declared.int_locals,
        facts: Vec::new(),
        seen: HashSet::new(),
        loops: Vec::new(),
        gotos: Vec::new(),
        steps: 0,
        aliases: &declared.aliases,
        failure_values: OnceCell::new(),
        last_breaks: None,
        last_end: None,
        auto_freed: &declared.auto_freed,
        aggregates: &declared.aggregates,
        summaries: OnceCell::new(),
        handed_later: &declared.handed_later,
        lent_leaks: Vec::new(),
        kept_leaks: Vec::new(),
        not_kept: HashSet::new(),
        given_back: HashSet::new(),
        acquired_into: HashMap::new(),
        looked_up: HashMap::new(),
        released: HashMap::new(),
        unreleased: Vec::new(),
        function,
        nodes,
        cursor: body.walk(),
    };
    let mut state = State::start();
    engine.visit(body, &mut state);
    if state.live {
        let end = ByteRange::new(body.end_byte().saturating_sub(1), body.end_byte());
        engine.exit(None, end, &state);
    }
    if engine.steps > STEP_LIMIT {
        return Vec::new();
    }
    // A resource held at an error return is reported only where the function releases it on
    // another path: its own code says the release is its business.
    for (key, acquire, exit) in std::mem::take(&mut engine.unreleased) {
        if let Some(&release) = engine.released.get(&key) {
            engine.report(Fact::Unreleased {
                key,
                acquire,
                release,
                exit,
            });
        }
    }
    for fact in std::mem::take(&mut engine.lent_leaks) {
        if let Fact::Leak { alloc, .. } = &fact {
            if engine.given_back.contains(alloc) {
                engine.report(fact);
            }
        }
    }
    for (fact, calls) in std::mem::take(&mut engine.kept_leaks) {
        if let Fact::Leak { alloc, .. } = &fact {
            if calls
                .iter()
                .all(|c| engine.not_kept.contains(&(*alloc, *c)))
            {
                engine.report(fact);
            }
        }
    }
    engine.facts
}

/// True when no path of the function can free one pointer twice, so that the walk could find
/// no `Fact::DoubleFree`: the function makes at most one free call, and not inside a loop. The
/// walk visits a statement outside a loop once per path (it does not follow a `goto` back), and
/// a double free is a free call reached with its pointer already freed.
pub fn frees_at_most_once(inputs: &FlowInputs, function: Node) -> bool {
    match inputs.frees.values().next() {
        None => true,
        Some(_) if inputs.frees.len() > 1 => false,
        Some(&arg) => !in_loop(arg, function),
    }
}

/// True when the allocation `call` is stored in a local or a field (`p = kmalloc(...);`,
/// `struct foo *p = kzalloc(...);`) and the very next statement tests it (`if (!p)`,
/// `if (p == NULL)`, `if (unlikely(!p))`, `if (!p || ...)`): every path that goes on from the
/// allocation meets the test first, and the walk could find no `Fact::UncheckedUse` of it.
pub fn tested_right_after(call: Node, source: &str) -> bool {
    let Some(parent) = syntax::parent_outside_parens(call) else {
        return false;
    };
    let (target, statement) = match parent.kind_name() {
        "assignment_expression"
            if parent.field("right").map(strip_parens) == Some(call)
                && parent
                    .field("operator")
                    .is_some_and(|o| text(o, source) == "=") =>
        {
            let statement = parent
                .parent()
                .filter(|s| s.kind_name() == "expression_statement");
            (parent.field("left"), statement)
        }
        "init_declarator" if parent.field("value").map(strip_parens) == Some(call) => {
            let statement = parent.parent().filter(|d| {
                let mut cursor = d.walk();
                d.kind_name() == "declaration"
                    && d.children_by_field_name("declarator", &mut cursor).count() == 1
            });
            (
                parent.field("declarator").and_then(declared_name),
                statement,
            )
        }
        _ => return false,
    };
    let (Some(target), Some(statement)) = (target, statement) else {
        return false;
    };
    if !matches!(target.kind_name(), "identifier" | "field_expression") {
        return false;
    }
    let Some(condition) = syntax::next_code_sibling(statement)
        .filter(|n| n.kind_name() == "if_statement")
        .and_then(|n| n.field("condition"))
    else {
        return false;
    };
    tests_first(condition, &syntax::squash(text(target, source)), source)
}

/// True when `condition` tests `target` (squashed) for NULL before it reads anything else.
fn tests_first(condition: Node, target: &str, source: &str) -> bool {
    let node = strip_parens(condition);
    let is_target = |n: Node| syntax::squash(text(strip_parens(n), source)) == target;
    let is_null = |n: Node| matches!(text(strip_parens(n), source), "NULL" | "0");
    match node.kind_name() {
        "identifier" | "field_expression" => is_target(node),
        "unary_expression" => {
            node.child(0).is_some_and(|o| text(o, source) == "!")
                && node.field("argument").is_some_and(is_target)
        }
        "binary_expression" => {
            let (Some(op), Some(left), Some(right)) = (
                node.field("operator").map(|o| text(o, source)),
                node.field("left"),
                node.field("right"),
            ) else {
                return false;
            };
            match op {
                "==" | "!=" => {
                    (is_target(left) && is_null(right)) || (is_null(left) && is_target(right))
                }
                "||" | "&&" => tests_first(left, target, source),
                _ => false,
            }
        }
        "call_expression" => {
            matches!(callee_name(node, source), Some("likely" | "unlikely"))
                && matches!(call_arguments(node).as_slice(), [only] if tests_first(*only, target, source))
        }
        _ => false,
    }
}

/// True when `node` sits in a loop's body or condition within `function`, the kernel's
/// iterator macros included (masked as `while`, or a call missing its `;` before a block).
fn in_loop(node: Node, function: Node) -> bool {
    let mut at = node;
    while let Some(parent) = at.parent() {
        if parent.id() == function.id() {
            break;
        }
        match parent.kind_name() {
            "for_statement" | "while_statement" | "do_statement" => return true,
            "compound_statement"
                if parent
                    .prev_named_sibling()
                    .is_some_and(|s| s.kind_name() == "expression_statement") =>
            {
                return true
            }
            _ => {}
        }
        at = parent;
    }
    false
}

/// True when every lock the function takes is released further down the same block, with
/// nothing between that can leave the block or be jumped into (`return`, `goto`, `break`,
/// `continue`, a label), and every release closes such a pair: `spin_lock(&p->lock); ...;
/// spin_unlock(&p->lock);`. Then no path returns holding a lock or releases one it did not
/// take, and the walk could find no `Fact::LockHeld` or `Fact::EnteredHeld`. A lock taken or
/// released anywhere else (in a condition, an expression, without an argument) answers false.
pub fn locks_paired_in_line(inputs: &FlowInputs, source: &str) -> bool {
    if !inputs.conditional_acquires.is_empty() {
        return false;
    }
    // The statements of each block that take or release a lock, by block.
    let mut blocks: HashMap<usize, Vec<(Node, bool, String)>> = HashMap::new();
    let calls = inputs
        .acquires
        .values()
        .map(|a| (a, true))
        .chain(inputs.releases.values().map(|a| (a, false)));
    for (arg, acquire) in calls {
        let Some(arg) = *arg else { return false };
        let statement = arg
            .parent()
            .filter(|l| l.kind_name() == "argument_list")
            .and_then(|l| l.parent())
            .filter(|c| c.kind_name() == "call_expression")
            .and_then(|c| c.parent().filter(|s| s.named_child(0) == Some(c)))
            .filter(|s| s.kind_name() == "expression_statement");
        let Some(statement) = statement else {
            return false;
        };
        let Some(block) = statement
            .parent()
            .filter(|b| matches!(b.kind_name(), "compound_statement" | "case_statement"))
        else {
            return false;
        };
        blocks.entry(block.id()).or_default().push((
            statement,
            acquire,
            syntax::squash(text(arg, source)),
        ));
    }
    for events in blocks.values_mut() {
        events.sort_by_key(|(s, _, _)| s.start_byte());
        let mut open: Vec<(Node, String)> = Vec::new();
        for (statement, acquire, key) in events.drain(..) {
            if acquire {
                open.push((statement, key));
                continue;
            }
            let Some(at) = open.iter().rposition(|(_, k)| *k == key) else {
                return false;
            };
            let (taken, _) = open.remove(at);
            let mut between = taken.next_sibling();
            while let Some(node) = between.filter(|n| n.id() != statement.id()) {
                if syntax::any_node(node, |n| {
                    matches!(
                        n.kind_name(),
                        "return_statement"
                            | "goto_statement"
                            | "break_statement"
                            | "continue_statement"
                            | "labeled_statement"
                    )
                    .then_some(true)
                }) {
                    return false;
                }
                between = node.next_sibling();
            }
        }
        if !open.is_empty() {
            return false;
        }
    }
    true
}

/// The named children of a node, listed before they are walked: most nodes have a few.
type Kids<'t> = smallvec::SmallVec<[Node<'t>; 8]>;

/// Beyond this many visited nodes the walk gives up and reports nothing for the function.
const STEP_LIMIT: usize = 200_000;

#[derive(Clone, Debug, PartialEq)]
struct Resource {
    alloc: Option<ByteRange>,
    freed: Option<ByteRange>,
    checked: bool,
    escaped: bool,
    /// Given to a callee whose name does not say it keeps or releases what it is given
    /// (`ret = foo_init_buffers(p)`, `bar_read(&p->hdr)`): the callee may have kept it, so it
    /// is not a leak unless the function itself hands the object on later (`return p;`,
    /// `dev->p = p;`), which it could not do with something it had given away.
    lent: bool,
    /// Given to a call other than the plain buffer and printing calls of `only_reads`.
    passed: bool,
    /// Escaped only by being linked into a list (`list_add(&p->list, head)`): unlinking it
    /// again (`list_del(&p->list)`) makes it the function's own again.
    linked: bool,
    /// Other names the pointer was copied to (`prop->value = buf = kzalloc(...)`): a NULL test
    /// of any of them tests it.
    also: Vec<String>,
    /// The places it is stored in (`dev->pool = pool`, `oct->iq[n] = iq`) and not cleared
    /// again (`oct->iq[n] = NULL`): whoever can reach them can free it.
    stored: Vec<String>,
    /// Escaped only through a call that keeps what it is given (`netdev_rx_handler_register(dev,
    /// fn, port)`), with the local its result went to and the call: where the local says the
    /// call failed, the callee kept nothing. The flag: the object was linked before that call
    /// (`rhashtable_insert_fast()`, then `nf_flow_table_offload_add_cb(..., ft)` fails), and
    /// stays linked when the call failed.
    kept_unless: Option<(String, ByteRange, bool)>,
    /// This path released something read out of it (`bitmap_free(pool->usage)`,
    /// `iounmap(bb->dir)`): the function is taking it apart, so it is the function's to free.
    torn: bool,
    /// Given to a call whose name says it releases it (`device_unregister(&p->dev)`,
    /// `put_device(&p->dev)`) or to a function of the file that may free it.
    released: bool,
    /// Stored in a field of an allocation the path then freed (`bank->label = kstrdup(...);
    /// ... kfree(bank);`), never given anywhere else: nothing can reach it any more.
    orphaned: bool,
    /// Tested not NULL on this path (`if (!p) goto err;` behind it), the variable not given
    /// by address since: a later `if (p)` is true.
    nonnull: bool,
    /// Escaped, and only ever through calls whose names say they keep what they are given
    /// (`hclge_cmd_send(hw, desc, n)`), these: where the function frees it itself after the
    /// same calls on a path that succeeds, they did not keep it (`Engine::not_kept`).
    by_calls: Option<Vec<ByteRange>>,
    /// Every call whose name says it keeps what it is given that this path gave it to, however
    /// else it escaped.
    given_to: Vec<ByteRange>,
    /// Escaped other than by being stored in a place the walk can name (`stored`): handed on,
    /// returned, linked, kept by a call.
    handed: bool,
}

impl Resource {
    /// Handed on for good: stored, linked or given away in a way the function cannot undo.
    fn hand_on(&mut self) {
        self.escaped = true;
        self.linked = false;
        self.kept_unless = None;
        self.by_calls = None;
        self.handed = true;
    }

    /// Handed to `call`, whose name says it keeps what it is given (`Resource::by_calls`).
    fn hand_to_call(&mut self, call: ByteRange) {
        let mut calls = match (self.escaped, self.by_calls.take()) {
            (false, _) => Some(Vec::new()),
            (true, calls) => calls,
        };
        self.hand_on();
        push_new(&mut self.given_to, &[call]);
        if let Some(calls) = calls.as_mut() {
            push_new(calls, &[call]);
        }
        self.by_calls = calls;
    }

    /// The calls it escaped into, when it escaped only into calls that say they keep it (not
    /// stored, linked or released): whether they kept it is for the function's other paths
    /// to tell.
    fn only_given_to(&self) -> Option<&[ByteRange]> {
        let plain = self.escaped && !self.linked && !self.released && self.stored.is_empty();
        self.by_calls.as_deref().filter(|_| plain)
    }

    /// Whether the path leaving with an error takes the object apart (it released something
    /// read out of it) after it escaped: the function treats it as its own, so whatever it
    /// was lent or given to did not take it. An object still stored where the caller can
    /// reach it (`adapter->rsi_dev = rsi_dev`) may be the caller's to free.
    fn given_back_on_error(&self) -> bool {
        self.escaped && self.torn && self.stored.is_empty() && !self.linked && !self.released
    }
}

/// Joins what two paths know of the failed call that would take an escape back
/// (`Resource::kept_unless`): it holds only if every path on which the object escaped knows it.
fn join_kept_unless(x: &Resource, y: &Resource) -> Option<(String, ByteRange, bool)> {
    match (x.escaped, y.escaped) {
        (false, false) => None,
        (true, false) => x.kept_unless.clone(),
        (false, true) => y.kept_unless.clone(),
        (true, true) => x
            .kept_unless
            .clone()
            .filter(|v| y.kept_unless.as_ref() == Some(v)),
    }
}

/// Joins the calls two paths gave an object to (`Resource::by_calls`): the escape is still
/// only into such calls if it is on every path on which the object escaped.
fn join_by_calls(x: &Resource, y: &Resource) -> Option<Vec<ByteRange>> {
    match (x.escaped, y.escaped) {
        (false, false) => None,
        (true, false) => x.by_calls.clone(),
        (false, true) => y.by_calls.clone(),
        (true, true) => {
            let (mut all, more) = (x.by_calls.clone()?, y.by_calls.as_ref()?);
            push_new(&mut all, more);
            Some(all)
        }
    }
}

/// Appends each of `more` not already in `all`: the small sets of names and calls a
/// `Resource` keeps, in the order first seen.
fn push_new<T: PartialEq + Clone>(all: &mut Vec<T>, more: &[T]) {
    for item in more {
        if !all.contains(item) {
            all.push(item.clone());
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntValue {
    Zero,
    Error,
    /// Tested not negative (the false branch of `if (ret < 0)`): zero or a count.
    NotError,
}

#[derive(Clone, Debug)]
struct State {
    live: bool,
    resources: BTreeMap<String, Resource>,
    locks: BTreeMap<String, ByteRange>,
    /// Every lock this path took in the function, held or not any more (a join keeps those of
    /// both paths): a release of a lock not among them means the function was entered holding it.
    taken: BTreeSet<(String, ByteRange)>,
    ints: BTreeMap<String, IntValue>,
    /// Locals that hold the result of a test (`bool ok = (p != NULL)`): testing them tests that.
    conds: BTreeMap<String, ByteRange>,
    /// Calls this path made while holding a lock that were given the lock itself: the callee
    /// may release it.
    lock_calls: BTreeSet<(String, ByteRange)>,
    /// Resources of `FlowInputs::takes` taken on this path and not released, with where.
    held: BTreeMap<String, ByteRange>,
}

impl State {
    fn start() -> State {
        State {
            live: true,
            resources: BTreeMap::new(),
            locks: BTreeMap::new(),
            taken: BTreeSet::new(),
            ints: BTreeMap::new(),
            conds: BTreeMap::new(),
            lock_calls: BTreeSet::new(),
            held: BTreeMap::new(),
        }
    }

    /// The call whose result `local` holds failed: what it was given to keep
    /// (`Resource::kept_unless`) is the function's own again.
    fn kept_nothing(&mut self, local: &str) {
        for r in self.resources.values_mut() {
            if let Some((_, _, linked)) = r.kept_unless.take_if(|(k, _, _)| k == local) {
                r.escaped = linked;
                r.linked = linked;
            }
        }
    }

    fn dead() -> State {
        State {
            live: false,
            ..State::start()
        }
    }

    /// Joins two paths: what both agree on is kept, anything they disagree on is forgotten.
    fn merge(a: State, b: State) -> State {
        if !a.live {
            return b;
        }
        if !b.live {
            return a;
        }
        let mut resources = BTreeMap::new();
        for (key, x) in a.resources {
            if let Some(y) = b.resources.get(&key) {
                if x.alloc == y.alloc && x.freed == y.freed {
                    let mut also = x.also.clone();
                    push_new(&mut also, &y.also);
                    let mut stored = x.stored.clone();
                    push_new(&mut stored, &y.stored);
                    let mut given_to = x.given_to.clone();
                    push_new(&mut given_to, &y.given_to);
                    let kept_unless = join_kept_unless(&x, y);
                    let merged = Resource {
                        checked: x.checked || y.checked,
                        escaped: x.escaped || y.escaped,
                        lent: x.lent || y.lent,
                        passed: x.passed || y.passed,
                        linked: x.linked && y.linked,
                        torn: x.torn && y.torn,
                        released: x.released || y.released,
                        orphaned: x.orphaned && y.orphaned,
                        nonnull: x.nonnull && y.nonnull,
                        by_calls: join_by_calls(&x, y),
                        handed: x.handed || y.handed,
                        given_to,
                        stored,
                        kept_unless,
                        also,
                        ..x
                    };
                    resources.insert(key, merged);
                }
            }
        }
        // Held on both paths, even if one path dropped it and took it again: held, named by
        // the earlier acquisition.
        let locks = a
            .locks
            .into_iter()
            .filter_map(|(k, v)| {
                let w = *b.locks.get(&k)?;
                Some((k, if w.start < v.start { w } else { v }))
            })
            .collect();
        // Zero on one path and not negative on the other is not negative.
        let ints = a
            .ints
            .into_iter()
            .filter_map(|(k, v)| match (v, b.ints.get(&k)?) {
                (x, y) if x == *y => Some((k, x)),
                (IntValue::Zero | IntValue::NotError, IntValue::Zero | IntValue::NotError) => {
                    Some((k, IntValue::NotError))
                }
                _ => None,
            })
            .collect();
        let mut taken = a.taken;
        taken.extend(b.taken);
        let mut lock_calls = a.lock_calls;
        lock_calls.extend(b.lock_calls);
        let conds = a
            .conds
            .into_iter()
            .filter(|(k, v)| b.conds.get(k) == Some(v))
            .collect();
        let held = a
            .held
            .into_iter()
            .filter(|(k, v)| b.held.get(k) == Some(v))
            .collect();
        State {
            live: true,
            resources,
            locks,
            taken,
            ints,
            conds,
            lock_calls,
            held,
        }
    }

    fn merge_all(states: impl IntoIterator<Item = State>) -> State {
        states.into_iter().fold(State::dead(), State::merge)
    }

    /// Forgets `key` and everything reached through it (`key->field`).
    /// The keys of the objects `alias` was copied to or points into (`Resource::also`).
    fn holders<'s>(&'s self, alias: &'s str) -> impl Iterator<Item = &'s String> + 's {
        self.resources
            .iter()
            .filter(move |(_, r)| r.also.iter().any(|a| a == alias))
            .map(|(k, _)| k)
    }

    /// The variable `key` now holds a value computed from its old one: what the path knew of
    /// its value (zero, an error, a tested result) is gone.
    fn forget_value(&mut self, key: &str) {
        self.ints.remove(key);
        self.conds.remove(key);
    }

    fn reset(&mut self, key: &str) {
        self.resources.retain(|k, _| !is_within(k, key));
        for r in self.resources.values_mut() {
            r.also.retain(|a| !is_within(a, key));
        }
        self.ints.remove(key);
        self.conds.remove(key);
    }
}

/// The key of the resource `key` names: `key` itself, or for a local the object was copied to
/// on this path, and no other object (`p = ctx->buf`, see `Resource::also`), the object's own
/// key, so `*p` and `if (!p)` are a use and a test of it.
fn copied_from(state: &State, key: String, node: Node) -> String {
    if state.resources.contains_key(&key) || node.kind_name() != "identifier" {
        return key;
    }
    let object = {
        let mut holders = state.holders(&key);
        match (holders.next(), holders.next()) {
            (Some(object), None) => Some(object.clone()),
            _ => None,
        }
    };
    object.unwrap_or(key)
}

/// `place = p`: the object escapes into a place the walk can name (`Resource::stored`);
/// `None` is a place it cannot be taken back from (another local, a global).
fn store(r: &mut Resource, place: Option<&str>) {
    match place {
        Some(place) => {
            r.escaped = true;
            r.kept_unless = None;
            r.by_calls = None;
            if !r.stored.iter().any(|p| p == place) {
                r.stored.push(place.to_owned());
            }
        }
        None => r.hand_on(),
    }
}

/// `place = NULL`: what was stored there is not kept there any more (`oct->iq[n] = NULL` on
/// an error path). It still escaped: a call made while it was stored may have reached it
/// there and freed it.
fn unstore(state: &mut State, place: &str) {
    for r in state.resources.values_mut() {
        r.stored.retain(|p| p != place);
    }
}

/// Whether a call's name says it releases or tears down what it is given: `bitmap_free`,
/// `iounmap`, `dma_free_coherent`, `clk_disable_unprepare`, `foo_put`, `bar_unregister`.
fn tears_down(name: &str) -> bool {
    const STARTS: &[&str] = &[
        "free",
        "release",
        "destroy",
        "unregister",
        "unprepare",
        "disable",
        "deinit",
        "uninit",
        "cleanup",
        "remove",
        "delete",
        "dispose",
    ];
    const ENDS: &[&str] = &["free", "unmap", "put", "release", "destroy"];
    any_word(name, |w| {
        w == "del"
            || STARTS.iter().any(|s| w.starts_with(s))
            || (ENDS.iter().any(|e| w.ends_with(e)) && !matches!(w, "input" | "output"))
    })
}

/// Calls that keep what they are given only when they succeed: a registration, an insertion
/// or a store that fails has kept nothing (`netdev_rx_handler_register()`, `xa_insert()`).
/// Sending and queueing calls consume what they are given either way, and `*_or_reset()`
/// helpers release it themselves when they fail.
fn keeps_unless_failed(name: &str) -> bool {
    keeps(name)
        && !name.contains("or_reset")
        && !any_word(name, |w| {
            matches!(
                w,
                "send" | "xmit" | "post" | "queue" | "submit" | "schedule" | "push"
            ) || w.starts_with("enqueue")
        })
}

/// `x` of `&x` (parentheses and casts aside).
fn address_of<'t>(node: Node<'t>, source: &str) -> Option<Node<'t>> {
    let node = strip_parens(node);
    (node.kind_name() == "pointer_expression"
        && node
            .field("operator")
            .is_some_and(|o| o.utf8_text(source.as_bytes()).ok() == Some("&")))
    .then(|| node.field("argument").map(strip_parens))
    .flatten()
}

/// The member when `arg` is the address of a part the object holds (`&entry->ports`), not of
/// the object itself under another type: its embedded base (`&crtc->base`, a member the
/// callee is named after: `musb_dma_controller_destroy(&d->controller)`), device, kobject or
/// count, whose release or set-up may free or keep the whole object.
fn uncounted_member<'s>(name: &str, arg: Node, source: &'s str) -> Option<&'s str> {
    let field = address_of(arg, source).filter(|a| a.kind_name() == "field_expression")?;
    let member = field.field("field")?.utf8_text(source.as_bytes()).ok()?;
    let lower = member.to_ascii_lowercase();
    let whole = [
        "dev", "kobj", "ref", "count", "base", "obj", "parent", "core", "common",
    ]
    .iter()
    .any(|c| lower.contains(c))
        || name.to_ascii_lowercase().contains(&lower);
    (!whole).then_some(member)
}

/// True when the callee's name says it takes apart the member of an object it is given
/// (`xa_destroy(&entry->ports)`, `mutex_destroy(&p->lock)`, `foo_cleanup(&p->ring)`): the
/// object itself is not freed, only torn down.
fn dismantles_part(name: &str, arg: Node, source: &str) -> bool {
    uncounted_member(name, arg, source).is_some()
        && any_word(name, |w| {
            w.starts_with("destroy") || matches!(w, "fini" | "uninit" | "deinit" | "cleanup")
        })
}

/// True for the calls of the kernel's intrusive containers, which link an object by a member
/// it holds (`rhashtable_insert_fast(&ht, &e->node, params)`, `hash_add(t, &e->hnode, key)`,
/// `rb_link_node(&e->rb, parent, link)`) and unlink it again. A driver's own `*_add()` and
/// `*_remove()` given a member may hand the object over for good
/// (`rdma_user_mmap_entry_remove()` drops the entry's last reference).
fn container_call(name: &str) -> bool {
    [
        "rhashtable_",
        "rhltable_",
        "hash_",
        "hlist_",
        "rb_",
        "llist_",
        "interval_tree_",
        "timerqueue_",
        "plist_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// True when the callee's name says it takes the object it is given by a linkage member out of
/// an intrusive container (`rhashtable_remove_fast(&ht, &e->node, params)`,
/// `hash_del(&e->hnode)`, `rb_erase(&e->rb, &root)`): the object is unlinked, not released.
fn unlinks_part(name: &str, arg: Node, source: &str) -> bool {
    container_call(name)
        && uncounted_member(name, arg, source).is_some()
        && any_word(name, |w| {
            w.starts_with("remove") || w.starts_with("erase") || matches!(w, "del" | "unlink")
        })
}

/// True when the callee's name says it sets up the member of an object it is given
/// (`xa_init(&entry->ports)`, `ida_init(&p->ids)`): the object is not lent to be kept.
fn initializes_part(name: &str, arg: Node, source: &str) -> bool {
    uncounted_member(name, arg, source).is_some() && any_word(name, |w| w == "init")
}

/// True for a name written as a constant is (`USB_STOR_TRANSPORT_ERROR`, `NOTIFY_BAD`).
fn is_constant_name(name: &str) -> bool {
    name.bytes().any(|b| b.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_within(key: &str, base: &str) -> bool {
    key == base
        || key
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with("->") || rest.starts_with('.'))
}

/// What a branch condition says when it is true or false.
#[derive(Clone, Debug)]
enum Known {
    Null(String),
    NonNull(String),
    IntError(String),
    IntZero(String),
    IntNotError(String),
    /// Greater than zero (`if (i > 0)`): not zero, and no error either.
    IntPositive(String),
}

#[derive(Default)]
struct Loop {
    breaks: Vec<State>,
    continues: Vec<State>,
    is_switch: bool,
}

/// What a function declares, and which of its locals name other objects: read once per function
/// and shared by every walk of it (the rules each walk a function with their own inputs).
#[derive(Default)]
pub struct Declared {
    /// The byte range of each labeled statement, by label (kept as ranges so the rules'
    /// contexts can hold this without tying it to the tree's lifetime).
    labels: HashMap<String, std::ops::Range<usize>>,
    locals: HashSet<String>,
    int_locals: HashSet<String>,
    auto_freed: HashSet<String>,
    aggregates: HashSet<String>,
    /// Read on first need by a walk (see `Engine::aliases`).
    aliases: OnceCell<HashMap<String, String>>,
    /// Read on first need by a walk (see `Engine::handed_later`).
    handed_later: OnceCell<HashMap<String, usize>>,
}

impl Declared {
    /// The labels and locals of a function's body, whose named nodes are `body`
    /// (`syntax::named_nodes`, the body first).
    pub fn read(body: &[(Node, usize)], source: &str) -> Declared {
        let mut declared = Declared::default();
        if let Some((first, _)) = body.first() {
            let mut cursor = first.walk();
            for &(node, _) in body {
                declared.index(node, source, &mut cursor);
            }
        }
        declared
    }

    /// Records what `node` itself declares: a label, locals (`read` visits every node of the
    /// body).
    fn index<'t>(
        &mut self,
        node: Node<'t>,
        source: &str,
        cursor: &mut tree_sitter::TreeCursor<'t>,
    ) {
        match node.kind_name() {
            "labeled_statement" => {
                if let Some(label) = node.field("label") {
                    self.labels
                        .insert(text(label, source).to_owned(), node.byte_range());
                }
            }
            "declaration" => {
                let is_int = node.field("type").is_some_and(|t| {
                    matches!(
                        t.kind_name(),
                        "primitive_type" | "sized_type_specifier" | "type_identifier"
                    )
                });
                for declarator in node.children_by_field_name("declarator", cursor) {
                    if let Some(name) = declared_name(declarator) {
                        let name = text(name, source).to_owned();
                        let plain = matches!(declarator.kind_name(), "identifier")
                            || (declarator.kind_name() == "init_declarator"
                                && declarator
                                    .field("declarator")
                                    .is_some_and(|d| d.kind_name() == "identifier"));
                        if is_int && plain {
                            self.int_locals.insert(name.clone());
                        }
                        if declares_auto_free(declarator, source) {
                            self.auto_freed.insert(name.clone());
                        }
                        // `struct i2c_msg msgs[] = ...`, `struct foo_cfg cfg;`: the object
                        // itself lives in the frame.
                        let inner = match declarator.kind_name() {
                            "init_declarator" => declarator.field("declarator"),
                            _ => Some(declarator),
                        };
                        let aggregate = inner.is_some_and(|d| {
                            d.kind_name() == "array_declarator"
                                || (d.kind_name() == "identifier"
                                    && node.field("type").is_some_and(|t| {
                                        matches!(
                                            t.kind_name(),
                                            "struct_specifier" | "union_specifier"
                                        )
                                    }))
                        });
                        if aggregate {
                            self.aggregates.insert(name.clone());
                        }
                        self.locals.insert(name);
                    }
                }
            }
            _ => {}
        }
    }
}

/// True when `declarator` carries cleanup.h's `__free(...)` (`char *buf __free(kfree) = NULL`).
/// The dialect masks the annotation for the grammar, so it is read from the source between
/// the declared name and the `=`, `,` or `;` that follows it.
fn declares_auto_free(declarator: Node, source: &str) -> bool {
    let Some(name) = declared_name(declarator) else {
        return false;
    };
    let rest = source.get(name.end_byte()..).unwrap_or("");
    let end = rest.find([',', ';', '=']).unwrap_or(rest.len());
    // The annotation may also sit before the name (`struct foo __free(kfree) *p = NULL`):
    // the text from the previous declarator (or the type) to the name.
    let start = declarator
        .prev_named_sibling()
        .map_or(declarator.start_byte(), |p| p.end_byte());
    let before = source
        .get(start.min(name.start_byte())..name.start_byte())
        .unwrap_or("");
    rest[..end].contains("__free(") || before.contains("__free(")
}

struct Engine<'a, 't> {
    source: &'a str,
    inputs: &'a FlowInputs<'t>,
    body: Node<'t>,
    /// The body's named nodes in source order (`syntax::named_nodes`).
    nodes: &'a [(Node<'t>, usize)],
    labels: &'a HashMap<String, std::ops::Range<usize>>,
    locals: &'a HashSet<String>,
    int_locals: &'a HashSet<String>,
    facts: Vec<Fact>,
    seen: HashSet<Fact>,
    loops: Vec<Loop>,
    gotos: Vec<(ByteRange, String)>,
    steps: usize,
    /// The joined `break` states of the loop body walked last (for loops that never end
    /// otherwise).
    last_breaks: Option<State>,
    /// The state at the end of that body (with its `continue`s): where the next turn starts.
    last_end: Option<State>,
    /// Locals that name one other object for the whole function (`macsec = priv->macsec`
    /// assigned once): a lock reached through the local is the lock reached through the object.
    /// Read on first need (only lock names use them).
    aliases: &'a OnceCell<HashMap<String, String>>,
    /// Constants the function returns where one of its allocations failed (`if (!buf) return
    /// USB_STOR_TRANSPORT_ERROR;`): its own code says they report a failure. Read on first need.
    failure_values: OnceCell<HashSet<String>>,
    /// Locals declared with `__free(...)` (cleanup.h): freed automatically when they go out of
    /// scope, so they never leak.
    auto_freed: &'a HashSet<String>,
    /// Locals that are arrays or structs (not pointers): objects of the frame.
    aggregates: &'a HashSet<String>,
    /// Locals the function itself returns or stores outside its frame somewhere.
    handed_later: &'a OnceCell<HashMap<String, usize>>,
    /// Leaks of lent objects, reported after the walk if their allocation is in `given_back`.
    lent_leaks: Vec<Fact>,
    /// Leaks of objects given only to calls that say they keep them, with those calls:
    /// reported after the walk if every one of the calls is in `not_kept`.
    kept_leaks: Vec<(Fact, Vec<ByteRange>)>,
    /// (allocation, call): a path gave the object to the call, then freed it itself and
    /// succeeded, so the call did not keep it (`hclge_cmd_send(hw, desc, n)` that the function
    /// reads `desc` after and frees it).
    not_kept: HashSet<(ByteRange, ByteRange)>,
    /// Locals holding the result of a `FlowInputs::takes` acquisition that can fail (`ret =
    /// clk_prepare_enable(clk)`), with the resource: testing them tells whether it was taken.
    acquired_into: HashMap<String, String>,
    /// Locals holding the result of a `FlowInputs::lookups` call: a pointer, NULL when the
    /// lookup found nothing (so testing it is true when it succeeded).
    looked_up: HashMap<String, String>,
    /// The resources of `FlowInputs::takes` the function releases somewhere, with the first release.
    released: HashMap<String, ByteRange>,
    /// Resources held at an error return: (resource, acquisition, exit).
    unreleased: Vec<(String, ByteRange, Exit)>,
    /// Allocations some path lends, then frees itself, and returns success on.
    given_back: HashSet<ByteRange>,
    /// What the functions of the same file do with locks, read on first need.
    summaries: OnceCell<Rc<LockSummaries>>,
    function: Node<'t>,
    /// One cursor for listing children, reset for each node (a new cursor allocates).
    cursor: tree_sitter::TreeCursor<'t>,
}

impl<'a, 't> Engine<'a, 't> {
    fn text(&self, node: Node) -> &'a str {
        text(node, self.source)
    }

    /// The locals that the function returns (`return p;`, `return &p->member;`) or stores
    /// where it outlives the call (`dev->priv = p;`, `*out = p;`) somewhere in its body.
    /// True when every mention of the local `key` in the function is plain: assigned to,
    /// tested, written through (`key->f = v`, `key[i] = v`), measured (`sizeof(*key)`), or
    /// given (itself, a field or an element of it) to a call of `only_reads`. Then no copy of
    /// the pointer, or of a pointer into its memory (`urb->buf = key->data`, `return key->kv`,
    /// `vaddr = key + 8`), can outlive the function.
    fn only_plain_uses(&self, key: &str) -> bool {
        !syntax::any_node(self.body, |node| {
            (node.kind_name() == "identifier" && self.text(node) == key)
                .then(|| !self.plain_use(node))
        })
    }

    /// True when `list` is the argument list of a `realloc()` whose first argument is `var`
    /// and whose result is assigned to `var` again.
    fn reallocated_in_place(&self, list: Node, var: Node) -> bool {
        let Some(call) = list
            .parent()
            .filter(|_| list.kind_name() == "argument_list")
        else {
            return false;
        };
        if !callee_name(call, self.source).is_some_and(|n| REALLOCS.contains(&n))
            || list.named_child(0) != Some(var)
        {
            return false;
        }
        syntax::parent_outside_casts(call)
            .and_then(syntax::assignment)
            .is_some_and(|(left, _)| self.text(strip_parens(left)) == self.text(var))
    }

    /// One mention of a local for `only_plain_uses`.
    fn plain_use(&self, node: Node) -> bool {
        // Climb through the field and element accesses based on it: `key->a.b[i]`.
        let mut at = node;
        let mut through = false;
        while let Some(parent) = at.parent() {
            let based = matches!(
                parent.kind_name(),
                "field_expression" | "subscript_expression"
            ) && parent.field("argument") == Some(at);
            if !based {
                break;
            }
            through = true;
            at = parent;
        }
        let Some(parent) = at.parent() else {
            return false;
        };
        // `key = realloc(key, n)`: the block is given back and replaced by the one assigned to
        // `key`, which the walk follows from there.
        if !through && self.reallocated_in_place(parent, node) {
            return true;
        }
        // The last access is an element (`key[i]`, `key->tab[i]`): a value, not an address.
        let element = at.kind_name() == "subscript_expression";
        let plain_call = |list: Node| {
            list.kind_name() == "argument_list"
                && list
                    .parent()
                    .and_then(|call| callee_name(call, self.source))
                    .is_some_and(only_reads)
        };
        match parent.kind_name() {
            // `key = ...`, `key->f = ...`: written, not copied; `x = key[i]`, `sum += key->n`:
            // a value read out of it (a field alone may be an array, which is an address).
            "assignment_expression" => {
                parent.field("left") == Some(at)
                    || (through
                        && (element
                            || parent
                                .field("operator")
                                .is_some_and(|o| self.text(o) != "=")))
            }
            // Its declaration: `char *key;`, `char *key = kmalloc(...)`.
            "pointer_declarator" | "init_declarator" | "array_declarator" => {
                !through && parent.field("declarator") == Some(at)
            }
            "declaration" => !through,
            // `!key`, `key == NULL`, `if (key)`.
            "unary_expression" => !through && parent.child(0).is_some_and(|o| self.text(o) == "!"),
            "binary_expression" => {
                let op = parent.field("operator").map(|o| self.text(o)).unwrap_or("");
                // `key[i] != sum`: a value read out of it; `key == NULL`; `key + OFF` given
                // to a plain call (`memcpy(mac, key + OFF, ETH_ALEN)`).
                let compares = matches!(op, "==" | "!=" | "<" | ">" | "<=" | ">=");
                (through && (compares || element))
                    || (!through && matches!(op, "==" | "!="))
                    || (!through && op == "+" && parent.parent().is_some_and(plain_call))
            }
            "parenthesized_expression" => parent
                .parent()
                .is_some_and(|p| matches!(p.kind_name(), "if_statement" | "while_statement")),
            // `sizeof(*key)`; `&key[0]` or `&key->f` given to a plain call, also through a
            // cast (`printStructLine((twoIntsStruct *)&data[0])`).
            "pointer_expression" => syntax::parent_outside_casts(parent).is_some_and(|p| {
                p.kind_name() == "sizeof_expression"
                    || (p.kind_name() == "argument_list"
                        && p.parent()
                            .and_then(|call| callee_name(call, self.source))
                            .is_some_and(only_reads))
            }),
            "sizeof_expression" => true,
            "argument_list" => parent
                .parent()
                .and_then(|call| callee_name(call, self.source))
                .is_some_and(only_reads),
            _ => false,
        }
    }

    /// The locals the function hands on somewhere (returns, stores outside the frame, gives to
    /// a keeping call), with where it first does so.
    fn handed_on_later(&self) -> &HashMap<String, usize> {
        self.handed_later.get_or_init(|| {
            let mut out: HashMap<String, usize> = HashMap::new();
            let note = |out: &mut HashMap<String, usize>, name: &str, at: usize| {
                let first = out.entry(name.to_owned()).or_insert(at);
                *first = (*first).min(at);
            };
            let mut stack = vec![self.body];
            while let Some(node) = stack.pop() {
                let value = match node.kind_name() {
                    "return_statement" => node.named_child(0),
                    "assignment_expression" => node
                        .field("left")
                        .map(strip_parens)
                        .filter(|l| {
                            (l.kind_name() != "identifier" || !self.locals.contains(self.text(*l)))
                                && !self.in_local_aggregate(*l)
                        })
                        .and_then(|_| node.field("right")),
                    // `list_add(&p->list, head)`, `usb_set_serial_data(serial, p)`, or a
                    // function of the file that stores or links the parameter: kept by a
                    // callee later, so still the function's own before.
                    "call_expression" => {
                        let name = callee_name(node, self.source).unwrap_or("");
                        let args = call_arguments(node);
                        let taken = self
                            .summaries
                            .get_or_init(|| summary::for_file(self.function, self.source))
                            .storers
                            .get(name)
                            .cloned();
                        let given: Vec<Node> = if let Some(taken) = taken {
                            taken.iter().filter_map(|&i| args.get(i).copied()).collect()
                        } else if !keeps(name) {
                            Vec::new()
                        } else if links_first(name) {
                            args[..args.len().min(1)].to_vec()
                        } else {
                            args.clone()
                        };
                        for arg in &given {
                            let mut base = strip_parens(*arg);
                            while matches!(
                                base.kind_name(),
                                "pointer_expression" | "field_expression"
                            ) {
                                match base.field("argument") {
                                    Some(b) => base = strip_parens(b),
                                    None => break,
                                }
                            }
                            if base.kind_name() == "identifier" {
                                note(&mut out, self.text(base), node.start_byte());
                            }
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(value) = value.map(strip_parens) {
                    let value = match value.kind_name() {
                        "pointer_expression" => {
                            value.field("argument").map(strip_parens).and_then(|f| {
                                let mut base = f;
                                while base.kind_name() == "field_expression" {
                                    base = strip_parens(base.field("argument")?);
                                }
                                Some(base)
                            })
                        }
                        _ => Some(value),
                    };
                    if let Some(v) = value.filter(|v| v.kind_name() == "identifier") {
                        note(&mut out, self.text(v), node.start_byte());
                    }
                }
                let mut cursor = node.walk();
                stack.extend(node.named_children(&mut cursor));
            }
            out
        })
    }

    /// Where the function first hands the object on in its text (`handed_on_later`), under its
    /// own name or one that points into it (`adev = &iadev->adev; ... pf->adev = adev`).
    fn handed_later(&self, key: &str, r: &Resource) -> Option<usize> {
        let later = self.handed_on_later();
        std::iter::once(key)
            .chain(r.also.iter().map(String::as_str))
            .filter_map(|k| later.get(k).copied())
            .min()
    }

    /// The named children of `node`.
    fn kids(&mut self, node: Node<'t>) -> Kids<'t> {
        node.named_children(&mut self.cursor).collect()
    }

    /// Finds the locals assigned exactly once, to another object's name (`x = a->b`,
    /// `struct foo *x = a->b`): the same object under two names.
    fn find_aliases(&self) -> HashMap<String, String> {
        let body = self.body;
        let mut aliases = HashMap::new();
        let mut writes: HashMap<String, Vec<Node<'t>>> = HashMap::new();
        for &(node, _) in self.nodes {
            let (target, value) = match node.kind_name() {
                "assignment_expression" => {
                    (node.field("left").map(strip_parens), node.field("right"))
                }
                "init_declarator" => (
                    node.field("declarator").and_then(declared_name),
                    node.field("value"),
                ),
                "update_expression" => (node.field("argument"), None),
                "pointer_expression"
                    if node.field("operator").is_some_and(|o| self.text(o) == "&") =>
                {
                    // An address taken lets anything write the variable.
                    (node.field("argument").map(strip_parens), None)
                }
                _ => (None, None),
            };
            if let Some(target) = target.filter(|t| t.kind_name() == "identifier") {
                let entry = writes.entry(self.text(target).to_owned()).or_default();
                match value {
                    Some(value) => entry.push(value),
                    // Written in a way that is not a plain assignment: never an alias.
                    None => entry.extend([body, body]),
                }
            }
        }
        for (name, values) in writes {
            let [value] = values.as_slice() else { continue };
            let value = strip_parens(*value);
            if !self.locals.contains(&name) {
                continue;
            }
            // `sbi = EXT4_SB(sb)` names what the call returns; calls in lock names are mostly
            // accessor macros, and treating two spellings as one lock only hides findings.
            let alias = match value.kind_name() {
                "field_expression" => self.key(value),
                "call_expression" => Some(syntax::squash(self.text(value))),
                "identifier" if self.text(value) != name => Some(self.text(value).to_owned()),
                // `cxt = &pstore_zone_cxt`: the address of a named object.
                "pointer_expression"
                    if value.field("operator").is_some_and(|o| self.text(o) == "&") =>
                {
                    value
                        .field("argument")
                        .map(strip_parens)
                        .filter(|a| matches!(a.kind_name(), "identifier" | "field_expression"))
                        .and_then(|a| self.key(a))
                        .map(|k| format!("&{k}"))
                }
                _ => None,
            };
            if let Some(alias) = alias {
                aliases.insert(name, alias);
            }
        }
        aliases
    }

    /// The name of a lock or object, the same whatever way the code spells it: parentheses,
    /// casts and whitespace do not count, `&*x` is `x`, and a local that aliases another object
    /// (`macsec = priv->macsec`) is replaced by it.
    fn canonical(&self, node: Node, depth: usize) -> String {
        let node = strip_parens(node);
        let fallback = || syntax::squash(self.text(node));
        if depth > 8 {
            return fallback();
        }
        match node.kind_name() {
            "identifier" => {
                let name = self.text(node);
                self.aliases
                    .get_or_init(|| self.find_aliases())
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.to_owned())
            }
            "field_expression" => {
                let (Some(argument), Some(field)) = (node.field("argument"), node.field("field"))
                else {
                    return fallback();
                };
                let op = node.field("operator").map_or("->", |o| self.text(o));
                let base = self.canonical(argument, depth + 1);
                // `cxt->lock` where `cxt = &global`: the field of the global, `global.lock`.
                if let Some(object) = base.strip_prefix('&').filter(|o| {
                    op == "->"
                        && o.chars()
                            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '>' | '-'))
                }) {
                    return format!("{object}.{}", self.text(field));
                }
                format!("{base}{op}{}", self.text(field))
            }
            "pointer_expression" => {
                let (Some(op), Some(argument)) = (node.field("operator"), node.field("argument"))
                else {
                    return fallback();
                };
                let op = self.text(op);
                let inner = strip_parens(argument);
                let star = inner.kind_name() == "pointer_expression"
                    && inner.field("operator").is_some_and(|o| self.text(o) == "*");
                match (op, inner.field("argument")) {
                    ("&", Some(pointee)) if star => self.canonical(pointee, depth + 1),
                    _ => format!("{op}{}", self.canonical(argument, depth + 1)),
                }
            }
            _ => fallback(),
        }
    }

    /// The locks a call releases because the callee, defined or declared in the same file,
    /// releases a lock its caller holds (see `summary`): the callee's parameters replaced by the
    /// call's arguments.
    fn released_by_callee(&self, call: Node) -> Vec<String> {
        let Some(name) = callee_name(call, self.source) else {
            return Vec::new();
        };
        let summaries = self
            .summaries
            .get_or_init(|| summary::for_file(self.function, self.source));
        let Some(releaser) = summaries.releasers.get(name) else {
            return Vec::new();
        };
        let args: Vec<String> = call_arguments(call)
            .into_iter()
            .map(|a| self.canonical(a, 0))
            .collect();
        releaser
            .locks
            .iter()
            .map(|lock| summary::substitute(lock, &releaser.params, &args))
            .collect()
    }

    /// Records a call made holding a lock that is given the lock itself
    /// (`xlog_wait(&cil->xc_push_wait, &cil->xc_push_lock)`): a callee in another file may
    /// release it, which the walk cannot see. Frees, allocations and logging are not such
    /// calls. (Given only the object the lock is reached from, the callee is as often a helper
    /// of the error path that leaves the release to its caller.) Nor are the lock's own set-up,
    /// teardown and assertions.
    fn note_lock_call(&self, call: Node, name: &str, state: &mut State) {
        let id = call.id();
        let logging = [
            "err", "warn", "info", "dbg", "print", "notice", "trace", "WARN", "BUG",
        ]
        .iter()
        .any(|w| name.contains(w));
        // `mutex_destroy(&p->lock)`, `lockdep_assert_held(&p->lock)`: the lock's set-up,
        // teardown and assertions release nothing.
        let bookkeeping = any_word(name, |w| {
            matches!(w, "init" | "destroy" | "assert" | "lockdep")
        });
        if logging
            || bookkeeping
            || self.inputs.frees.contains_key(&id)
            || self.inputs.allocs.contains(&id)
            || self.inputs.derefs.contains(&id)
        {
            return;
        }
        let args: Vec<String> = call_arguments(call)
            .into_iter()
            .map(|a| self.canonical(a, 0))
            .collect();
        let here = ByteRange::of(call);
        for lock in state.locks.keys() {
            if args.iter().any(|a| a == lock) {
                state.lock_calls.insert((lock.clone(), here));
            }
        }
    }

    fn report(&mut self, fact: Fact) {
        if self.seen.insert(fact.clone()) {
            self.facts.push(fact);
        }
    }

    /// The key of an lvalue that can hold a pointer: `p`, `dev->buf`, `s.field`.
    fn key(&self, node: Node) -> Option<String> {
        let node = strip_parens(node);
        match node.kind_name() {
            "identifier" => Some(self.text(node).to_owned()),
            "field_expression" => {
                let base = self.key(node.field("argument")?)?;
                let op = node.field("operator").map_or("->", |o| self.text(o));
                let field = self.text(node.field("field")?);
                Some(format!("{base}{op}{field}"))
            }
            _ => None,
        }
    }

    /// The tracked resource that a value hands on: `p`, `(void *)p`, `&p->list`, `cond ? p : q`.
    fn handed_on(&self, node: Node, state: &State) -> Vec<String> {
        let node = strip_parens(node);
        match node.kind_name() {
            // `a = b = kmalloc(...)`: the value of the inner assignment is `b`.
            "assignment_expression" => node
                .field("left")
                .map(|left| self.handed_on(left, state))
                .unwrap_or_default(),
            "conditional_expression" => ["consequence", "alternative"]
                .iter()
                .filter_map(|f| node.field(f))
                .flat_map(|n| self.handed_on(n, state))
                .collect(),
            "pointer_expression" if node.field("operator").is_some_and(|o| self.text(o) == "&") => {
                let mut inner = node.field("argument").map(strip_parens);
                while let Some(n) = inner {
                    if let Some(key) = self.key(n).filter(|k| state.resources.contains_key(k)) {
                        return vec![key];
                    }
                    // `&hw_priv->hw`, where `hw_priv` points into the object.
                    if n.kind_name() == "identifier" {
                        let holders: Vec<String> = state.holders(self.text(n)).cloned().collect();
                        if !holders.is_empty() {
                            return holders;
                        }
                    }
                    inner = match n.kind_name() {
                        "field_expression" | "subscript_expression" => {
                            n.field("argument").map(strip_parens)
                        }
                        _ => None,
                    };
                }
                Vec::new()
            }
            _ => {
                let named =
                    |alias: &str| -> Vec<String> { state.holders(alias).cloned().collect() };
                match self.key(node) {
                    Some(key) if state.resources.contains_key(&key) => vec![key],
                    // A local the object was copied to, or that points into it (`bind`).
                    Some(key) if node.kind_name() == "identifier" => named(&key),
                    // The element it was stored in: `node_devices[nid] = node;
                    // f(node_devices[nid])`.
                    None => self
                        .element_key(node)
                        .map(|e| named(&e))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            }
        }
    }

    fn visit(&mut self, node: Node<'t>, state: &mut State) {
        self.steps += 1;
        if self.steps > STEP_LIMIT || !state.live {
            return;
        }
        match node.kind_name() {
            "compound_statement" | "ERROR" | "else_clause" | "case_statement" => {
                self.sequence(node, state)
            }
            "declaration" => self.declaration(node, state),
            "expression_statement" | "parenthesized_expression" | "comma_expression" => {
                self.children(node, state);
                // `exit(1);`, `panic(...)`, `BUG();`: the path ends here, without returning.
                let call = node.named_child(0).filter(|c| {
                    node.kind_name() == "expression_statement" && c.kind_name() == "call_expression"
                });
                if call
                    .and_then(|c| callee_name(c, self.source))
                    .is_some_and(|n| NO_RETURN.contains(&n))
                {
                    state.live = false;
                }
            }
            "if_statement" => self.if_statement(node, state),
            "for_statement" | "while_statement" => self.loop_statement(node, state),
            "do_statement" => self.do_statement(node, state),
            "switch_statement" => self.switch_statement(node, state),
            "return_statement" => {
                let value = node.named_child(0).filter(|n| n.kind_name() != "comment");
                if let Some(value) = value {
                    self.visit(value, state);
                    self.returned_after_free(value, state);
                }
                self.exit(value, ByteRange::of(node), state);
                state.live = false;
            }
            "goto_statement" => {
                self.goto(node, state);
                state.live = false;
            }
            "break_statement" => {
                if let Some(l) = self.loops.last_mut() {
                    l.breaks.push(state.clone());
                }
                state.live = false;
            }
            "continue_statement" => {
                if let Some(l) = self.loops.iter_mut().rev().find(|l| !l.is_switch) {
                    l.continues.push(state.clone());
                }
                state.live = false;
            }
            "labeled_statement" => {
                let mut inner = self.kids(node);
                inner.retain(|c| c.kind_name() != "statement_identifier");
                for child in inner {
                    self.visit(child, state);
                }
            }
            "preproc_if" | "preproc_ifdef" | "preproc_else" | "preproc_elif"
            | "preproc_elifdef" => self.preprocessor(node, state),
            "assignment_expression" => self.assignment(node, state),
            // `count++`: whatever the path knew of the value holds no more.
            "update_expression" => {
                self.children(node, state);
                if let Some(target) = node.field("argument").map(strip_parens) {
                    if target.kind_name() == "identifier" {
                        state.forget_value(self.text(target));
                    }
                }
            }
            "call_expression" => self.call(node, state),
            "field_expression" => {
                self.children(node, state);
                let arrow = node.field("operator").is_some_and(|o| self.text(o) == "->");
                if let (true, Some(argument)) = (arrow, node.field("argument")) {
                    self.dereference(argument, node, state);
                }
            }
            "subscript_expression" => {
                self.children(node, state);
                if let Some(argument) = node.field("argument") {
                    self.dereference(argument, node, state);
                }
            }
            // `&p->field` and `&p[i]` compute an address and read nothing through `p`.
            "pointer_expression" if node.field("operator").is_some_and(|o| self.text(o) == "&") => {
                let inner = node.field("argument").map(strip_parens);
                match inner {
                    Some(inner)
                        if matches!(
                            inner.kind_name(),
                            "field_expression" | "subscript_expression"
                        ) =>
                    {
                        self.address_of(inner, state)
                    }
                    _ => self.children(node, state),
                }
            }
            "pointer_expression" => {
                self.children(node, state);
                let star = node.field("operator").is_some_and(|o| self.text(o) == "*");
                if let (true, Some(argument)) = (star, node.field("argument")) {
                    self.dereference(argument, node, state);
                }
            }
            "unary_expression" => {
                self.children(node, state);
                if let Some(argument) = node.field("argument") {
                    self.mark_checked(argument, state);
                }
            }
            "binary_expression" => self.binary(node, state),
            "conditional_expression" => {
                if let Some(condition) = node.field("condition") {
                    self.visit(condition, state);
                    self.mark_checked(condition, state);
                }
                for field in ["consequence", "alternative"] {
                    if let Some(branch) = node.field(field) {
                        self.visit(branch, state);
                    }
                }
            }
            "sizeof_expression"
            | "alignof_expression"
            | "offsetof_expression"
            | "comment"
            | "identifier"
            | "number_literal"
            | "string_literal"
            | "char_literal" => {}
            _ => self.children(node, state),
        }
    }

    /// Visits `p->a.b` or `p[i]` under `&`: the base pointer is not dereferenced, but what the
    /// expression reads on the way (`p->q->r` reads `p->q`, an index) is.
    fn address_of(&mut self, node: Node<'t>, state: &mut State) {
        let Some(argument) = node.field("argument") else {
            return self.children(node, state);
        };
        if node.kind_name() == "subscript_expression" {
            if let Some(index) = node.field("index") {
                self.visit(index, state);
            }
        }
        let argument_stripped = strip_parens(argument);
        let through_dot = node.kind_name() == "field_expression"
            && node.field("operator").is_some_and(|o| self.text(o) == ".");
        if through_dot && argument_stripped.kind_name() == "field_expression" {
            self.address_of(argument_stripped, state);
        } else {
            self.visit(argument, state);
        }
    }

    fn children(&mut self, node: Node<'t>, state: &mut State) {
        for child in self.kids(node) {
            self.visit(child, state);
        }
    }

    /// Statements in order. A kernel iterator macro (`list_for_each_entry(...) { ... }`) parses
    /// as a call missing its `;` followed by a block; that block is walked as a loop body.
    fn sequence(&mut self, node: Node<'t>, state: &mut State) {
        let children = self.kids(node);
        let mut i = 0;
        while i < children.len() && state.live {
            let child = children[i];
            let macro_loop = child.kind_name() == "expression_statement"
                && child
                    .child(child.child_count().saturating_sub(1))
                    .is_some_and(|last| last.is_missing())
                && children
                    .get(i + 1)
                    .is_some_and(|n| n.kind_name() == "compound_statement");
            if macro_loop {
                // An iterator the dialect does not mask (`skb_list_walk_safe(segs, skb, next) {`)
                // assigns its cursors before anything reads them.
                let call = child
                    .named_child(0)
                    .filter(|c| c.kind_name() == "call_expression");
                if let Some(call) = call {
                    let name = callee_name(call, self.source).unwrap_or("");
                    for cursor in self.iterator_cursors(name, &call_arguments(call)) {
                        state.reset(&cursor);
                    }
                }
            }
            self.visit(child, state);
            if macro_loop {
                self.loop_body(children[i + 1], None, None, state, false);
                i += 1;
            }
            i += 1;
        }
    }

    fn declaration(&mut self, node: Node<'t>, state: &mut State) {
        let mut cursor = node.walk();
        let declarators: Vec<_> = node
            .children_by_field_name("declarator", &mut cursor)
            .collect();
        for declarator in declarators {
            let Some(name) = declared_name(declarator) else {
                continue;
            };
            let name = self.text(name).to_owned();
            match declarator
                .field("value")
                .filter(|_| declarator.kind_name() == "init_declarator")
            {
                Some(value) => {
                    self.visit(value, state);
                    self.bind(&name, value, state);
                }
                None => state.reset(&name),
            }
        }
    }

    fn assignment(&mut self, node: Node<'t>, state: &mut State) {
        let (Some(left), Some(right)) = (node.field("left"), node.field("right")) else {
            return self.children(node, state);
        };
        self.visit(right, state);
        let plain = node.field("operator").is_some_and(|o| self.text(o) == "=");
        // The left side is written, not read; only what it dereferences on the way counts.
        match strip_parens(left).kind_name() {
            "identifier" => {}
            "field_expression" | "subscript_expression" | "pointer_expression" => {
                self.visit(left, state)
            }
            _ => self.visit(left, state),
        }
        if !plain {
            // `count += n`, `flags |= f`: whatever the path knew of the value holds no more.
            if strip_parens(left).kind_name() == "identifier" {
                state.forget_value(self.text(strip_parens(left)));
            }
            return;
        }
        // `msgs[0].buf = buf`: stored in an object of the frame, which dies with it; the
        // pointer is lent to whatever that object is given to, not handed on.
        if self.in_local_aggregate(left) {
            let handed = self.handed_on(right, state);
            if !handed.is_empty() {
                for key in handed {
                    if let Some(r) = state.resources.get_mut(&key) {
                        r.lent = true;
                    }
                }
                return;
            }
        }
        match self.key(left) {
            Some(key) => self.bind(&key, right, state),
            None => {
                // `mlc->serio[i] = p; if (!mlc->serio[i])` tests `p` through the element.
                let element = self.element_key(left);
                if let Some(element) = &element {
                    if self.is_zero(right) {
                        unstore(state, element);
                    }
                    for handed in self.handed_on(right, state) {
                        if let Some(r) = state.resources.get_mut(&handed) {
                            r.also.retain(|a| a != element);
                            r.also.push(element.clone());
                        }
                    }
                }
                for handed in self.handed_on(right, state) {
                    if let Some(r) = state.resources.get_mut(&handed) {
                        store(r, element.as_deref());
                    }
                }
            }
        }
    }

    /// True when `lvalue` is a field or element of a local array or struct reached without a
    /// dereference: `msgs[0].buf`, `cfg.data`.
    fn in_local_aggregate(&self, lvalue: Node) -> bool {
        let mut node = strip_parens(lvalue);
        let mut inside = false;
        loop {
            match node.kind_name() {
                "field_expression"
                    if node.field("operator").is_some_and(|o| self.text(o) == ".") => {}
                "subscript_expression" => {}
                "identifier" => return inside && self.aggregates.contains(self.text(node)),
                _ => return false,
            }
            inside = true;
            match node.field("argument") {
                Some(base) => node = strip_parens(base),
                None => return false,
            }
        }
    }

    /// The name of an array element, `base[index]`, or of a pointee, `*base`, for telling a
    /// test of the element from a test of what was stored in it. Not a key: elements are not tracked as resources.
    fn element_key(&self, node: Node) -> Option<String> {
        let node = strip_parens(node);
        // `*out = buf = kmalloc(...); if (!*out)` tests `buf` through what `out` points to.
        if node.kind_name() == "pointer_expression" {
            let star = node.field("operator")?;
            let base = self.key(node.field("argument")?)?;
            return (self.text(star) == "*").then(|| format!("*{base}"));
        }
        if node.kind_name() != "subscript_expression" {
            return None;
        }
        let base = self.key(node.field("argument")?)?;
        let index = node.field("index")?;
        Some(format!("{base}[{}]", syntax::squash(self.text(index))))
    }

    /// `key = value`: a new allocation, an integer we can classify, or a value handed on.
    fn bind(&mut self, key: &str, value: Node, state: &mut State) {
        let written = value;
        let value = strip_parens(value);
        let acquisition = self.inputs.takes.get(&value.id()) == Some(&true)
            || self.inputs.lookups.contains(&value.id());
        if !acquisition {
            // `ret` holds something else now: testing it tests that.
            self.acquired_into.remove(key);
        }
        // `priv->np = np`: a looked-up node kept under another name is not this path's to put.
        if let Some(held) = Some(value)
            .filter(|v| v.kind_name() == "identifier")
            .and_then(|v| self.looked_up.get(self.text(v)))
        {
            state.held.remove(held);
        }
        let handed = self.handed_on(value, state);
        if self.is_zero(value) {
            unstore(state, key);
        }
        // `rc = other()`: a call whose failure `rc` told is no longer what `rc` says.
        for r in state.resources.values_mut() {
            if r.kept_unless
                .as_ref()
                .is_some_and(|(k, call, _)| k == key && *call != ByteRange::of(value))
            {
                r.kept_unless = None;
            }
        }
        state.reset(key);
        if value.kind_name() == "call_expression" && self.inputs.allocs.contains(&value.id()) {
            state.resources.insert(
                key.to_owned(),
                Resource {
                    alloc: Some(ByteRange::of(value)),
                    freed: None,
                    // `__GFP_NOFAIL` allocations never return NULL.
                    checked: self.text(value).contains("__GFP_NOFAIL"),
                    escaped: !self.locals.contains(key) || self.auto_freed.contains(key),
                    lent: false,
                    passed: false,
                    linked: false,
                    also: Vec::new(),
                    stored: Vec::new(),
                    kept_unless: None,
                    torn: false,
                    released: false,
                    orphaned: false,
                    nonnull: false,
                    by_calls: None,
                    given_to: Vec::new(),
                    handed: !self.locals.contains(key) || self.auto_freed.contains(key),
                },
            );
            return;
        }
        // `gmi = &buf->mem_info` (or `adev = &iadev->adev`): another name for a part of the
        // object, not a place it is kept; giving `gmi` to a call gives `buf` (`handed_on`),
        // and what that call does to it, keep, release or lend, it does to `buf`.
        // So is `cur = buf` where `cur` is only read through and given to calls that do not
        // say they keep it: a cursor the function moves through the object (not a view of
        // it as another type, `req = (struct aead_request *)mem`, which may be what a callee
        // keeps).
        let interior = !handed.is_empty()
            && self.locals.contains(key)
            && !self.auto_freed.contains(key)
            && ((value.kind_name() == "identifier" && written.id() == value.id())
                || (value.kind_name() == "pointer_expression"
                    && value
                        .field("argument")
                        .map(strip_parens)
                        .is_some_and(|a| a.kind_name() == "field_expression")))
            && (value.kind_name() == "pointer_expression" || self.only_lent(key));
        // `dev->pool = pool`: stored in a place the function may clear again.
        let place = key.contains("->") || key.contains('.');
        for handed in handed {
            if let Some(r) = state.resources.get_mut(&handed) {
                if !interior {
                    store(r, place.then_some(key));
                }
                r.also.push(key.to_owned());
            }
        }
        // `ret = fd;` after `if (fd < 0)`: `ret` holds the same error.
        let copied = Some(value)
            .filter(|v| v.kind_name() == "identifier")
            .and_then(|v| state.ints.get(self.text(v)).copied());
        if let Some(v) = self.int_value(value).or(copied) {
            state.ints.insert(key.to_owned(), v);
        }
        let comparison = match value.kind_name() {
            "binary_expression" => value
                .field("operator")
                .is_some_and(|o| matches!(self.text(o), "==" | "!=")),
            "unary_expression" => value.child(0).is_some_and(|o| self.text(o) == "!"),
            // `ret = PTR_ERR_OR_ZERO(p); if (ret) return ret;`: testing `ret` tests `p`.
            "call_expression" => matches!(
                callee_name(value, self.source),
                Some("PTR_ERR_OR_ZERO" | "IS_ERR" | "IS_ERR_OR_NULL")
            ),
            _ => false,
        };
        if comparison {
            state.conds.insert(key.to_owned(), ByteRange::of(value));
        }
    }

    /// Whether the function treats the object `name` as reference counted: it embeds a
    /// `struct device` or a kobject (`pps->dev.release`, `&rpdev->dev`) or a kref. Its last
    /// reference, dropped by a failed registration, frees it.
    fn counted(&self, name: &str) -> bool {
        let body = self.text(self.body);
        ["dev.", "kobj", "kref", "refcount"]
            .iter()
            .any(|field| body.contains(&format!("{name}->{field}")))
            || [")", ","]
                .iter()
                .any(|after| body.contains(&format!("&{name}->dev{after}")))
    }

    /// Whether the local `name` is never the base of an address taken again (`&name->dev`)
    /// and never given to a call whose name says it keeps or sets up what it is given
    /// (`cdev_init(name)`, `device_register`, `list_add`).
    fn only_lent(&self, name: &str) -> bool {
        self.lent_only(name, 0)
    }

    /// The local that `address` (`&x->field`) is assigned to, as the whole value (`hw =
    /// &x->hw`, `struct ksz_hw *hw = &x->hw`).
    fn interior_local(&self, address: Node) -> Option<&'a str> {
        let parent = address.parent()?;
        let target = match parent.kind_name() {
            "assignment_expression"
                if parent
                    .field("right")
                    .is_some_and(|r| r.id() == address.id())
                    && parent
                        .field("operator")
                        .is_some_and(|o| self.text(o) == "=") =>
            {
                parent.field("left")
            }
            "init_declarator"
                if parent
                    .field("value")
                    .is_some_and(|v| v.id() == address.id()) =>
            {
                parent.field("declarator")
            }
            _ => None,
        }?;
        let target = strip_parens(target);
        let name = self.text(target);
        (target.kind_name() == "identifier" && self.locals.contains(name)).then_some(name)
    }

    fn lent_only(&self, name: &str, depth: usize) -> bool {
        const KEEPS: &[&str] = &[
            "init", "register", "add", "attach", "link", "insert", "set", "store", "queue",
            "submit", "create", "setup", "probe",
        ];
        !syntax::any_node(self.body, |node| {
            if node.kind_name() != "identifier" || self.text(node) != name {
                return None;
            }
            let parent = node.parent()?;
            // `&gmi->part` is a pointer into the object too: fine when it only goes to
            // another such local (`hw = &hw_priv->hw`), with no loop of them.
            let readdressed = parent.kind_name() == "field_expression"
                && parent.parent().is_some_and(|g| {
                    g.kind_name() == "pointer_expression"
                        && self.text(g).starts_with('&')
                        && !self
                            .interior_local(g)
                            .is_some_and(|l| l != name && depth < 3 && self.lent_only(l, depth + 1))
                });
            let kept = parent.kind_name() == "argument_list"
                && parent
                    .parent()
                    .and_then(|call| callee_name(call, self.source))
                    .is_some_and(|callee| {
                        let callee = callee.to_ascii_lowercase();
                        KEEPS.iter().any(|w| callee.contains(w))
                    });
            Some(readdressed || kept)
        })
    }

    fn int_value(&self, value: Node) -> Option<IntValue> {
        let value = strip_parens(value);
        match value.kind_name() {
            "number_literal" if self.text(value) == "0" => Some(IntValue::Zero),
            "number_literal" if self.text(value).starts_with('-') => Some(IntValue::Error),
            // A pointer set to NULL and returned is a failure.
            "null" => Some(IntValue::Error),
            "identifier" if self.text(value) == "NULL" => Some(IntValue::Error),
            "unary_expression" if value.child(0).is_some_and(|o| self.text(o) == "-") => {
                Some(IntValue::Error)
            }
            "call_expression" => matches!(
                callee_name(value, self.source),
                Some("PTR_ERR" | "ERR_PTR" | "ERR_CAST")
            )
            .then_some(IntValue::Error),
            _ => None,
        }
    }

    fn call(&mut self, node: Node<'t>, state: &mut State) {
        let name = callee_name(node, self.source).unwrap_or("");
        // `typeof(*p)` and the size macros (`struct_size(p, member, n)`) read no memory.
        if matches!(name, "typeof" | "__typeof__" | "__typeof" | "sizeof_field")
            || name == "struct_size"
            || name.ends_with("_struct_size")
            || name == "flex_array_size"
        {
            return;
        }
        self.children(node, state);
        // Listing a call's arguments walks its children; the checks below ask several times.
        let args: Kids<'t> = call_arguments(node).into();
        let id = node.id();
        let here = ByteRange::of(node);
        self.pair_call(node, here, state);
        // `bitmap_free(pool->usage)`: the path takes the object apart.
        if !state.resources.is_empty() && tears_down(name) {
            for &arg in &args {
                // `xa_destroy(&entry->ports)` takes apart a part of `entry` too.
                let mut base = strip_parens(arg);
                if let Some(inner) = address_of(base, self.source) {
                    base = inner;
                }
                let mut read_out = false;
                while matches!(
                    base.kind_name(),
                    "field_expression" | "subscript_expression"
                ) {
                    read_out = true;
                    match base.field("argument") {
                        Some(b) => base = strip_parens(b),
                        None => break,
                    }
                }
                if let Some(r) = self
                    .key(base)
                    .filter(|_| read_out)
                    .and_then(|k| state.resources.get_mut(&k))
                {
                    r.torn |= r.freed.is_none();
                }
            }
        }
        // An iterator macro (`list_for_each_entry_safe(pos, n, head, member)`) assigns its
        // cursors, and a callee given `&x` may assign `x`: whatever was known about them is gone.
        let iterator = name.contains("for_each");
        let head = list_head(name, args.len());
        for (i, &arg) in args.iter().enumerate() {
            let arg = strip_parens(arg);
            if iterator && arg.kind_name() == "identifier" && head != Some(i) {
                state.reset(self.text(arg));
            }
            let address = arg.kind_name() == "pointer_expression"
                && arg.field("operator").is_some_and(|o| self.text(o) == "&");
            if let Some(inner) = arg
                .field("argument")
                .map(strip_parens)
                .filter(|i| address && i.kind_name() == "identifier")
            {
                let key = self.text(inner);
                if state.resources.get(key).is_some_and(|r| r.freed.is_some()) {
                    state.reset(key);
                } else {
                    state.ints.remove(key);
                }
            }
        }
        if let Some(&arg) = self.inputs.frees.get(&id) {
            // `sw->router = router; ... kfree(sw->router)` frees `router`, and so does
            // `kfree(card->vcs[0])` after `card->vcs[0] = vc`.
            let key = self.key(arg);
            if let Some(alias) = key
                .clone()
                .or_else(|| self.element_key(arg))
                .filter(|k| !state.resources.contains_key(k))
            {
                for r in state.resources.values_mut() {
                    if r.alloc.is_some() && r.freed.is_none() && r.also.contains(&alias) {
                        r.freed = Some(here);
                    }
                }
            }
            let Some(key) = key else { return };
            match state.resources.get(&key).and_then(|r| r.freed) {
                Some(first) => self.report(Fact::DoubleFree {
                    var: key,
                    first,
                    second: here,
                }),
                None => {
                    // What the fields of an allocation the function kept to itself alone held
                    // is lost when a plain free (not a destructor, which may free the fields)
                    // frees it.
                    let container = state
                        .resources
                        .get(&key)
                        .is_some_and(|r| r.alloc.is_some() && !r.escaped && !r.lent && !r.passed);
                    if container && PLAIN_FREES.contains(&name) {
                        let freed_otherwise = |field: &str| {
                            // `kfree(cell->name - 1)`
                            self.inputs.frees.values().any(|arg| {
                                self.key(*arg).as_deref() != Some(field)
                                    && mentions(&syntax::squash(self.text(*arg)), field)
                            })
                        };
                        for (k, r) in state.resources.iter_mut() {
                            if k != &key
                                && is_within(k, &key)
                                && r.alloc.is_some()
                                && r.freed.is_none()
                                && !r.passed
                                && !r.lent
                                && r.also.is_empty()
                                && r.stored.is_empty()
                                && !freed_otherwise(k)
                            {
                                r.orphaned = true;
                            }
                            // `ring->first_seg = seg; ... kfree(ring)`: a local whose only
                            // escape was into fields of the container (or of itself: `seg->next
                            // = seg`) is lost with it too.
                            if k != &key
                                && r.alloc.is_some()
                                && r.freed.is_none()
                                && !r.passed
                                && !r.lent
                                && !r.handed
                                && !r.stored.is_empty()
                                && r.stored
                                    .iter()
                                    .all(|p| (p != &key && is_within(p, &key)) || is_within(p, k))
                                && !freed_otherwise(k)
                            {
                                r.orphaned = true;
                            }
                        }
                    }
                    let entry = state.resources.entry(key).or_insert(Resource {
                        alloc: None,
                        freed: None,
                        checked: true,
                        escaped: true,
                        lent: false,
                        passed: false,
                        linked: false,
                        also: Vec::new(),
                        stored: Vec::new(),
                        kept_unless: None,
                        torn: false,
                        released: false,
                        orphaned: false,
                        nonnull: false,
                        by_calls: None,
                        given_to: Vec::new(),
                        handed: true,
                    });
                    entry.freed = Some(here);
                }
            }
            return;
        }
        if let Some(&arg) = self.inputs.acquires.get(&id) {
            let key = self.lock_key(node, arg);
            state.taken.insert((key.clone(), here));
            state.locks.insert(key, here);
            return;
        }
        if let Some(&arg) = self.inputs.releases.get(&id) {
            let key = self.lock_key(node, arg);
            if state.locks.remove(&key).is_none() && !state.taken.iter().any(|(k, _)| *k == key) {
                self.report(Fact::EnteredHeld {
                    lock: key,
                    at: here,
                });
            }
            return;
        }
        if !state.locks.is_empty() {
            self.note_lock_call(node, name, state);
            for lock in self.released_by_callee(node) {
                let held = state
                    .locks
                    .keys()
                    .find(|k| **k == lock)
                    .or_else(|| state.locks.keys().find(|k| same_fields(k, &lock)));
                if let Some(held) = held.cloned() {
                    state.locks.remove(&held);
                }
            }
        }
        if self.inputs.conditional_acquires.contains_key(&id) {
            // Taken or not depending on the result: `if_statement` decides per branch.
            return;
        }
        // Printing a pointer's value (`"%p"`), or naming it in an UPPER_CASE macro that pastes
        // the name (`SCTP_DBG_OBJCNT_DEC(ep)`), reads nothing through it.
        let prints_pointer = args
            .iter()
            .copied()
            .any(|a| a.kind_name() == "string_literal" && self.text(a).contains("%p"));
        let macro_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        let borrows = self.inputs.borrows.contains(&id) || prints_pointer;
        let derefs = self.inputs.derefs.contains(&id) && !prints_pointer;
        // A macro may still test or keep a live pointer (`ZERO_OR_NULL_PTR(p)`), so the name
        // rule only clears a freed one.
        let names_freed = borrows || macro_name;
        if !borrows {
            // `f(&p->field)`: the callee gets a pointer into `*p` and reads or writes through
            // it, which a test inside the callee cannot catch (NULL plus an offset is not NULL).
            for &arg in &args {
                let arg = strip_parens(arg);
                let field = Some(arg)
                    .filter(|a| {
                        a.kind_name() == "pointer_expression"
                            && a.field("operator").is_some_and(|o| self.text(o) == "&")
                    })
                    .and_then(|a| a.field("argument"))
                    .map(strip_parens)
                    .filter(|f| {
                        f.kind_name() == "field_expression"
                            && f.field("operator").is_some_and(|o| self.text(o) == "->")
                    });
                if let Some(base) = field.and_then(|f| f.field("argument")) {
                    self.dereference(base, arg, state);
                }
            }
        }
        if !borrows && !derefs {
            // A callee given `dev` (or `&dev->sub`) may change `dev->buf`: forget what we knew.
            for &arg in &args {
                let arg = strip_parens(arg);
                let base = match arg.kind_name() {
                    "pointer_expression" => arg.field("argument").and_then(|a| self.key(a)),
                    _ => self.key(arg),
                };
                if let Some(base) = base {
                    state
                        .resources
                        .retain(|k, _| k == &base || !is_within(k, &base));
                }
            }
        }
        // A callee that keeps or releases what it is given, given something reached from an
        // object (`fput(migf->filp)`, `snd_ctl_add(card, info->kctl)` with a private_free,
        // `ttm_bo_init(&bo->tbo, ..., destroy)`), may free the object through it.
        let tracking = !state.resources.is_empty();
        // The positions where a function of the file only borrows what it is given.
        let borrowed: Vec<usize> = if tracking {
            self.summaries
                .get_or_init(|| summary::for_file(self.function, self.source))
                .borrowers
                .get(name)
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        // Given itself or a member's address; a variable given by address (`&p`) may be
        // read out and freed through (`cpu_groups = *pcpu_groups; kfree(cpu_groups)`).
        let borrowed_at = |i: usize, arg: Node| {
            borrowed.contains(&i)
                && address_of(arg, self.source).is_none_or(|a| a.kind_name() != "identifier")
        };
        let keeps = tracking
            && (keeps_or_releases(name)
                || args.iter().copied().any(|a| {
                    let t = self.text(a);
                    t.contains("destroy") || t.contains("release") || t.contains("_free")
                }));
        // A callee of the same file that takes over the parameter it is given (on some path):
        // frees it, drops its last reference, stores it or hands it on (`summary::takers`).
        if tracking {
            let summaries = self
                .summaries
                .get_or_init(|| summary::for_file(self.function, self.source))
                .clone();
            if let Some(freed) = summaries.takers.get(name) {
                for (i, arg) in args.iter().copied().enumerate() {
                    if !freed.contains(&i) {
                        continue;
                    }
                    for key in self.handed_on(arg, state) {
                        if let Some(r) = state.resources.get_mut(&key) {
                            if r.freed.is_none() {
                                r.hand_on();
                                r.released = true;
                            }
                        }
                    }
                }
            }
        }
        // A call that only frees memory (`usb_free_urb(p->urb)`, `free_page(p->buf)`) given a
        // pointer read out of an object frees that pointer's memory, not the object; one that
        // drops a reference (`fput(p->filp)`) may free the object through a release callback.
        let only_frees = {
            let lower = name.to_ascii_lowercase();
            let words: Vec<&str> = lower.split('_').filter(|w| !w.is_empty()).collect();
            words.iter().any(|w| w.ends_with("free"))
                && !words.iter().any(|w| {
                    w.ends_with("put") || w.starts_with("release") || w.starts_with("destroy")
                })
        };
        // `list_add(&new->list, head)` links `new`; the list's head stays where it was.
        let linked = |i: usize| i == 0 || !links_first(name);
        // `list_del(&p->list)` after this function's own `list_add(&p->list, head)`.
        let unlinks = ["list_del", "hlist_del"]
            .iter()
            .any(|u| name.starts_with(u));
        let mut unlinked: Vec<String> = Vec::new();
        let mut kept_here: Vec<String> = Vec::new();
        if keeps {
            // `rc = foo_register(dev, p)`: the local that tells whether the call kept `p`.
            let parent = node.parent();
            let result_local = parent
                .filter(|p| {
                    p.kind_name() == "assignment_expression"
                        && p.field("right").is_some_and(|r| r.id() == id)
                        && p.field("operator").is_some_and(|o| self.text(o) == "=")
                })
                .and_then(|p| p.field("left"))
                .or_else(|| {
                    parent
                        .filter(|p| {
                            p.kind_name() == "init_declarator"
                                && p.field("value").is_some_and(|v| v.id() == id)
                        })
                        .and_then(|p| p.field("declarator"))
                })
                .map(strip_parens)
                .filter(|l| l.kind_name() == "identifier")
                .map(|l| self.text(l).to_owned())
                .filter(|l| self.int_locals.contains(l) || self.locals.contains(l));
            for (_, arg) in args
                .iter()
                .copied()
                .enumerate()
                .filter(|(i, a)| linked(*i) && !borrowed_at(*i, *a))
            {
                let read_out = matches!(
                    strip_parens(arg).kind_name(),
                    "field_expression" | "subscript_expression"
                );
                // `xa_destroy(&entry->ports)`: torn above, not released.
                if (only_frees && read_out) || dismantles_part(name, arg, self.source) {
                    continue;
                }
                let mut base = strip_parens(arg);
                loop {
                    base = match base.kind_name() {
                        "pointer_expression" | "field_expression" | "subscript_expression" => {
                            match base.field("argument") {
                                Some(b) => strip_parens(b),
                                None => break,
                            }
                        }
                        _ => break,
                    };
                }
                // `rhashtable_insert_fast(&ht, &e->node, params)` links `e` by its member as
                // `list_add(&e->list, head)` does; `rhashtable_remove_fast()` unlinks it.
                let by_part = self::keeps(name)
                    && container_call(name)
                    && uncounted_member(name, arg, self.source).is_some();
                let unlinks_part = unlinks_part(name, arg, self.source);
                // `srf = &user_srf->srf; vmw_surface_init(dev_priv, srf, destroy)`: a local
                // pointing into the object gives the object.
                let key = self
                    .key(base)
                    .filter(|k| state.resources.contains_key(k))
                    .or_else(|| {
                        (base.kind_name() == "identifier")
                            .then(|| copied_from(state, self.text(base).to_owned(), base))
                    });
                if let Some((key, r)) =
                    key.and_then(|k| state.resources.get_mut(&k).map(|r| (k, r)))
                {
                    if r.freed.is_some() {
                        continue;
                    }
                    if (unlinks || unlinks_part) && r.linked {
                        r.escaped = false;
                        r.linked = false;
                        unlinked.push(key);
                    } else if unlinks_part {
                        // Taken out of a container something else put it in: not released.
                        unlinked.push(key);
                    } else {
                        // A value read out of a linked object (`add_vlan(efx, vlan->vid)`)
                        // leaves the object where the list holds it.
                        let linked = ((links_first(name) || by_part) && (r.linked || !r.escaped))
                            || (read_out && r.linked);
                        // Given itself, never given away or lent before: a failed call kept
                        // nothing. Given a value read out of it (`snd_ctl_add(card,
                        // info->kctl)`), or lent to a call that may have put it in another
                        // object (`kctl = snd_ctl_new1(&tmpl, elem)`), the callee's failure
                        // may have freed that object, and this one with it.
                        // Linked only (`rhashtable_insert_fast(&ht, &p->node, ...)`): a failed
                        // call leaves it linked.
                        let was_linked =
                            r.escaped && r.linked && r.stored.is_empty() && !r.released;
                        let undoable = (!r.escaped || was_linked)
                            && !r.lent
                            && !read_out
                            && !self.counted(&key)
                            && !r.also.iter().any(|a| self.counted(a));
                        if any_word(name, release_word) {
                            r.hand_on();
                        } else {
                            r.hand_to_call(ByteRange::of(node));
                        }
                        r.linked = linked;
                        r.released |= any_word(name, release_word);
                        if undoable && keeps_unless_failed(name) {
                            r.kept_unless =
                                result_local.clone().map(|local| (local, here, was_linked));
                        }
                        kept_here.push(key);
                    }
                }
            }
        }
        let tolerant: Vec<usize> = if tracking {
            self.summaries
                .get_or_init(|| summary::for_file(self.function, self.source))
                .null_tolerant
                .get(name)
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let plain = only_reads(name);
        // Whether the call is a statement of its own, its result unused: looked up once.
        let mut statement: Option<bool> = None;
        for (i, arg) in args.iter().copied().enumerate() {
            // `foo_lookup(dev, &p)` may store anything in `p`, NULL too.
            let by_address = Some(strip_parens(arg))
                .filter(|a| {
                    a.kind_name() == "pointer_expression"
                        && a.field("operator").is_some_and(|o| self.text(o) == "&")
                })
                .and_then(|a| a.field("argument"))
                .and_then(|a| self.key(strip_parens(a)));
            for key in self.handed_on(arg, state) {
                let Some(r) = state.resources.get_mut(&key) else {
                    continue;
                };
                if by_address.as_ref() == Some(&key) {
                    r.nonnull = false;
                }
                r.passed |= !plain;
                if let Some(free) = r.freed {
                    if derefs || !names_freed {
                        self.report(Fact::UseAfterFree {
                            var: key,
                            free,
                            at: ByteRange::of(arg),
                        });
                    }
                } else if derefs {
                    let direct = strip_parens(arg).kind_name() != "pointer_expression";
                    if direct {
                        self.dereference(arg, arg, state);
                    }
                } else if !borrows {
                    // Lending a pointer does not test it: the callee gets the same value, NULL
                    // or not (`qed_dcbx_query_params(hwfn, info, ...)` before `info->x`). A
                    // macro may test it, and so may a function of the file that tests that
                    // parameter (`if (!ret) return -EINVAL;`) for a caller that tests its
                    // result.
                    if borrowed_at(i, arg) {
                        // Read and written through by a function of the file, and no more.
                    } else if unlinked.contains(&key) {
                        // Taken back out of the list it was linked into: the function's own.
                    } else if dismantles_part(name, arg, self.source) {
                        // Torn above: `xa_destroy(&entry->ports)` frees nothing of `entry`.
                    } else if keeps_or_releases(name) && linked(i) {
                        if kept_here.contains(&key) {
                            // Handed on above.
                        } else if any_word(name, release_word) {
                            r.hand_on();
                        } else {
                            r.hand_to_call(ByteRange::of(node));
                        }
                        // A release tests what it is given (`put_device(NULL)` does nothing),
                        // and a call whose result the function uses may fail on NULL (`res =
                        // zorp_send(z, msg)`); a call made only to keep it (`dev_set_drvdata(d,
                        // p);`) tells nothing.
                        let statement = *statement.get_or_insert_with(|| {
                            node.parent()
                                .is_some_and(|p| p.kind_name() == "expression_statement")
                        });
                        r.checked |= any_word(name, release_word) || !statement;
                    } else if !initializes(name)
                        && !plain
                        && !initializes_part(name, arg, self.source)
                    {
                        r.lent = true;
                    }
                    if macro_name || tolerant.contains(&i) {
                        r.checked = true;
                    }
                }
            }
        }
    }

    /// The name of a lock: its argument (`&dev->lock`), or for argument-less locks the acquiring
    /// call (`rcu_read_lock()`, also for `rcu_read_unlock()`).
    fn lock_key(&self, call: Node, arg: Option<Node>) -> String {
        match arg {
            Some(arg) => self.canonical(arg, 0),
            None => format!(
                "{}()",
                callee_name(call, self.source)
                    .unwrap_or("")
                    .replace("_unlock", "_lock")
            ),
        }
    }

    /// A call of `FlowInputs::takes`: an acquisition that is a statement of its own, or whose result goes
    /// to a local or a test, holds the resource named by its first argument; a release lets it go.
    fn pair_call(&mut self, node: Node<'t>, here: ByteRange, state: &mut State) {
        let name = callee_name(node, self.source).unwrap_or("");
        if self.inputs.lookups.contains(&node.id()) {
            // `np = of_parse_phandle(...)`: the local holds the reference. A lookup whose
            // result goes anywhere else (a field, an argument) is not this function's to put,
            // nor one that steps a loop (`while ((np = of_find_compatible_node(np, ...)))`:
            // the loop ends when it finds nothing).
            let parent = syntax::parent_outside_parens(node);
            let steps_loop = parent
                .and_then(syntax::parent_outside_parens)
                .is_some_and(|p| {
                    matches!(
                        p.kind_name(),
                        "while_statement" | "for_statement" | "do_statement"
                    )
                });
            if steps_loop {
                return;
            }
            if let Some(var) = syntax::assigned_local(node) {
                // Named as a put will name it (`canonical` reads single-assignment locals as
                // their value).
                let key = self.canonical(var, 0);
                let var = self.text(var).to_owned();
                self.acquired_into.insert(var.clone(), key.clone());
                self.looked_up.insert(var, key.clone());
                state.held.insert(key, here);
            }
            return;
        }
        let Some(arg) = call_arguments(node)
            .into_iter()
            .nth(resource_argument(name))
        else {
            return;
        };
        if let Some(&can_fail) = self.inputs.takes.get(&node.id()) {
            let key = self.canonical(arg, 0);
            let parent = syntax::parent_outside_parens(node);
            let into = syntax::assigned_local(node);
            let taken = match parent.map(|p| p.kind_name()) {
                Some("expression_statement") => true,
                Some("assignment_expression" | "init_declarator") => into.is_some(),
                // Tested where it is called (`if (clk_enable(c))`): `pair_test` decides.
                _ => can_fail,
            };
            if !taken {
                return;
            }
            if let Some(var) = into.filter(|_| can_fail) {
                self.acquired_into
                    .insert(self.text(var).to_owned(), key.clone());
            }
            state.held.insert(key, here);
        } else if self.inputs.puts.contains(&node.id()) {
            let key = self.canonical(arg, 0);
            // Only a release of what this path took says the function owns it: a clock
            // disabled before it is set up and enabled again was on when the function began.
            if state.held.remove(&key).is_some() {
                self.released.entry(key).or_insert(here);
            }
        } else if name.starts_with("devm_add_action") {
            // The release is the device's now: `devm_add_action_or_reset()` runs it itself when
            // it fails, and the driver core when the device goes.
            state.held.clear();
        } else if !state.held.is_empty() && undoes(name) && !names_other_part(name) {
            // `snd_foo_free(chip)`, `foo_cleanup(priv)`: a teardown helper may release what
            // the function took; the walk cannot see inside it, so it stops tracking.
            // One that names what it tears down (`acme_free_rings(priv)`) releases that.
            state.held.clear();
        }
    }

    /// A test of whether a `FlowInputs::takes` acquisition that can fail failed (`if (ret)`, `if (ret <
    /// 0)`, `if (clk_prepare_enable(c))`): the resource, and whether the test is true when it
    /// failed (then the resource is not held on that branch).
    fn pair_test(&self, condition: Node) -> Option<(String, bool)> {
        let node = strip_parens(condition);
        match node.kind_name() {
            "unary_expression" if node.child(0).is_some_and(|o| self.text(o) == "!") => {
                let (key, failed) = self.pair_test(node.field("argument")?)?;
                Some((key, !failed))
            }
            // `if (ret)` fails when non-zero; `if (np)` for a lookup's pointer succeeded.
            "identifier" => {
                let name = self.text(node);
                let key = self.acquired_into.get(name)?.clone();
                Some((key, !self.looked_up.contains_key(name)))
            }
            // `if ((err = pci_enable_device(pdev)))`: the value is the call's; for a lookup
            // (`if (!(np = of_find_node_by_name(...)))`) the local's.
            "assignment_expression" => {
                let right = strip_parens(node.field("right")?);
                if self.inputs.lookups.contains(&right.id()) {
                    return self.pair_test(node.field("left")?);
                }
                self.pair_test(right)
            }
            "call_expression" => {
                let name = callee_name(node, self.source)?;
                if let Some(condition) = tested_condition(name, &call_arguments(node)) {
                    return self.pair_test(condition);
                }
                if self.inputs.takes.get(&node.id()) != Some(&true) {
                    return None;
                }
                let arg = *call_arguments(node).get(resource_argument(name))?;
                Some((self.canonical(arg, 0), true))
            }
            "binary_expression" => {
                if let Some(("&&", left, right)) = self.binary_parts(node) {
                    // `ret < 0 && ret != -EACCES`: true only where it failed.
                    return [left, right]
                        .into_iter()
                        .filter_map(|side| self.pair_test(side))
                        .find(|(_, failed)| *failed);
                }
                if let Some(("||", left, right)) = self.binary_parts(node) {
                    let sides: Vec<_> = [left, right]
                        .into_iter()
                        .filter_map(|side| self.pair_test(side))
                        .collect();
                    // False only where both sides are: a side that fails when false failed
                    // there (`if (quirk || (np = of_find_node_by_name(...)))`). Otherwise
                    // `if (!np || !parent)` is read as the failure of the side it names,
                    // though the other side alone may have made it true: the walk would rather
                    // miss a leak than report a node the code knows is NULL there.
                    return sides
                        .iter()
                        .find(|(_, failed)| !*failed)
                        .or(sides.first())
                        .cloned();
                }
                let (left, nonzero) = self.compared_with_zero(node)?;
                let (key, failed_when_nonzero) = self.pair_test(left)?;
                Some((key, failed_when_nonzero == nonzero))
            }
            _ => None,
        }
    }

    /// `x < 0`, `x != 0`, `x == 0`, `x >= 0`: `x`, and whether the test holds when `x` is
    /// non-zero (`<` and `!=`, for the kernel's zero-or-negative results) or when it is zero.
    fn compared_with_zero<'n>(&self, node: Node<'n>) -> Option<(Node<'n>, bool)> {
        let (op, left, right) = self.binary_parts(node)?;
        if !matches!(self.text(strip_parens(right)), "0" | "NULL") {
            return None;
        }
        match op {
            "<" | "!=" => Some((left, true)),
            "==" | ">=" => Some((left, false)),
            _ => None,
        }
    }

    /// A conditional acquisition tested by `condition`: the lock, where it was taken, and
    /// whether it is held when the condition is true.
    fn conditional_lock(&self, condition: Node) -> Option<(String, ByteRange, bool)> {
        let node = strip_parens(condition);
        match node.kind_name() {
            "unary_expression" if node.child(0).is_some_and(|o| self.text(o) == "!") => {
                let (key, at, held) = self.conditional_lock(node.field("argument")?)?;
                Some((key, at, !held))
            }
            "call_expression" => {
                if let Some(&(arg, held_when_nonzero)) =
                    self.inputs.conditional_acquires.get(&node.id())
                {
                    return Some((
                        self.lock_key(node, Some(arg)),
                        ByteRange::of(node),
                        held_when_nonzero,
                    ));
                }
                match callee_name(node, self.source) {
                    Some("likely" | "unlikely") => {
                        self.conditional_lock(*call_arguments(node).first()?)
                    }
                    _ => None,
                }
            }
            // `mutex_lock_interruptible(&m) < 0`, `down_trylock(&s) != 0`: the call compared
            // with zero.
            "binary_expression" => {
                let (left, nonzero) = self.compared_with_zero(node)?;
                let (key, at, held_when_nonzero) = self.conditional_lock(left)?;
                Some((key, at, held_when_nonzero == nonzero))
            }
            _ => None,
        }
    }

    /// `return p;` (or `return (char *)p;`) after `p` was freed: the caller gets a dangling
    /// pointer, which it has no way to tell from a live one.
    fn returned_after_free(&mut self, value: Node, state: &State) {
        let plain = strip_parens(value);
        if plain.kind_name() != "identifier" {
            return;
        }
        let Some(key) = self.key(plain) else { return };
        if let Some(free) = state.resources.get(&key).and_then(|r| r.freed) {
            self.report(Fact::UseAfterFree {
                var: key,
                free,
                at: ByteRange::of(value),
            });
        }
    }

    /// `pointer` is dereferenced by `at` (`p->x`, `*p`, `p[i]`, `memset(p, ...)`).
    fn dereference(&mut self, pointer: Node, at: Node, state: &mut State) {
        let Some(key) = self.key(pointer).map(|k| copied_from(state, k, pointer)) else {
            return;
        };
        let Some(r) = state.resources.get_mut(&key) else {
            return;
        };
        if let Some(free) = r.freed {
            self.report(Fact::UseAfterFree {
                var: key,
                free,
                at: ByteRange::of(at),
            });
        } else if let (Some(alloc), false) = (r.alloc, r.checked) {
            r.checked = true;
            self.report(Fact::UncheckedUse {
                var: key,
                alloc,
                at: ByteRange::of(at),
            });
        }
    }

    /// Any resource mentioned as a plain value in `node` counts as tested for NULL.
    fn mark_checked(&self, node: Node, state: &mut State) {
        let key = self.key(node).map(|k| copied_from(state, k, node));
        if let Some(r) = key.and_then(|k| state.resources.get_mut(&k)) {
            r.checked = true;
            return;
        }
        let node = strip_parens(node);
        match node.kind_name() {
            "unary_expression" | "binary_expression" | "call_expression" | "argument_list" => {
                let mut cursor = node.walk();
                for child in node.named_children(&mut cursor) {
                    self.mark_checked(child, state);
                }
            }
            // `!(p = kmalloc(...))` tests `p`; `(ret = -ENOMEM, !(p = kmalloc(...)))` tests its
            // last operand.
            "assignment_expression" => {
                if let Some(left) = node.field("left") {
                    self.mark_checked(left, state);
                }
            }
            "comma_expression" => {
                if let Some(right) = node.field("right") {
                    self.mark_checked(right, state);
                }
            }
            _ => {}
        }
    }

    /// The operator and operands of a binary expression.
    fn binary_parts<'n>(&self, node: Node<'n>) -> Option<(&'a str, Node<'n>, Node<'n>)> {
        let op = node.field("operator").map_or("", |o| self.text(o));
        Some((op, node.field("left")?, node.field("right")?))
    }

    fn binary(&mut self, node: Node<'t>, state: &mut State) {
        let Some((op, left, right)) = self.binary_parts(node) else {
            return self.children(node, state);
        };
        self.visit(left, state);
        if matches!(op, "&&" | "||" | "==" | "!=") {
            self.mark_checked(left, state);
        }
        self.visit(right, state);
        if matches!(op, "==" | "!=") {
            self.mark_checked(right, state);
        }
    }

    fn if_statement(&mut self, node: Node<'t>, state: &mut State) {
        let condition = node.field("condition");
        if let Some(condition) = condition {
            self.visit(condition, state);
            self.mark_checked(condition, state);
        }
        let (when_true, when_false) = condition
            .map(|c| self.knowledge(c, state))
            .unwrap_or_default();
        let mut yes = state.clone();
        let mut no = state.clone();
        self.learn(&mut yes, &when_true);
        self.learn(&mut no, &when_false);
        if let Some((lock, at, held_when_true)) = condition.and_then(|c| self.conditional_lock(c)) {
            let held = if held_when_true { &mut yes } else { &mut no };
            held.taken.insert((lock.clone(), at));
            held.locks.insert(lock, at);
        }
        if let Some((key, failed_when_true)) = condition.and_then(|c| self.pair_test(c)) {
            let failed = if failed_when_true { &mut yes } else { &mut no };
            failed.held.remove(&key);
        }
        if let Some(consequence) = node.field("consequence") {
            self.visit(consequence, &mut yes);
        }
        if let Some(alternative) = node.field("alternative") {
            self.visit(alternative, &mut no);
        }
        *state = State::merge(yes, no);
    }

    fn loop_statement(&mut self, node: Node<'t>, state: &mut State) {
        // An iterator macro (`list_for_each_entry_safe(pos, n, head, member) {`), masked as a
        // `while` for the grammar, assigns its cursor arguments: a name freed before the loop
        // names a list entry inside it.
        if let Some((name, args)) = syntax::iterator_macro(node, self.source) {
            for cursor in self.iterator_cursors(name, &args) {
                state.reset(&cursor);
            }
        }
        if let Some(initializer) = node.field("initializer") {
            self.visit(initializer, state);
        }
        if let Some(condition) = node.field("condition") {
            self.visit(condition, state);
            self.mark_checked(condition, state);
        }
        // `while (1)` and `for (;;)` leave only through `break` (or a return inside).
        let forever = match node.field("condition").map(strip_parens) {
            None => node.kind_name() == "for_statement",
            Some(c) => matches!(self.text(c), "1" | "true"),
        };
        // `list_for_each_entry(pos, head, member)` reads `pos->member.next` to step on.
        let stepper = syntax::iterator_macro(node, self.source)
            .filter(|(name, _)| steps_through_cursor(name))
            .and_then(|(_, args)| args.first().copied())
            .filter(|cursor| cursor.kind_name() == "identifier")
            .map(|cursor| (self.text(cursor).to_owned(), ByteRange::of(cursor)));
        if let Some(body) = node.field("body") {
            self.loop_body(body, node.field("update"), stepper.clone(), state, forever);
            if forever {
                let mut breaks = self.last_breaks.take().unwrap_or_else(State::dead);
                // A loop that never ends of itself (a worker's `while (true)`) is walked a
                // second turn from where the first left off: an exit of that turn is taken
                // after the first turn's releases (a lock dropped at the end of the first turn
                // and kept by an early `return` of the second).
                if let Some(mut turn) = self.last_end.take().filter(|e| e.live) {
                    self.loop_body(body, node.field("update"), stepper, &mut turn, false);
                    let again = self.last_breaks.take().unwrap_or_else(State::dead);
                    breaks = State::merge(breaks, again);
                }
                *state = breaks;
            }
        }
    }

    /// The plain identifiers among an iterator macro's arguments (its cursors), but for the
    /// list a list iterator walks.
    fn iterator_cursors(&self, name: &str, args: &[Node]) -> Vec<String> {
        let head = list_head(name, args.len());
        args.iter()
            .enumerate()
            .filter(|(i, n)| n.kind_name() == "identifier" && head != Some(*i))
            .map(|(_, n)| self.text(*n).to_owned())
            .collect()
    }

    /// Walks a loop body once; the state after the loop joins "never entered", "ran once" and
    /// every `break`. With `keep_end`, the state at the end of the body is kept in
    /// `last_end` for a second turn.
    /// `stepper` is the cursor an iterator reads to step to the next entry, with where.
    fn loop_body(
        &mut self,
        body: Node<'t>,
        update: Option<Node<'t>>,
        stepper: Option<(String, ByteRange)>,
        state: &mut State,
        keep_end: bool,
    ) {
        self.loops.push(Loop::default());
        let mut inside = state.clone();
        self.visit(body, &mut inside);
        let l = self.loops.pop().unwrap_or_default();
        let mut end = State::merge_all(std::iter::once(inside).chain(l.continues));
        if let Some((var, at)) = stepper {
            if let Some(free) = end.resources.get(&var).and_then(|r| r.freed) {
                self.report(Fact::UseAfterFree { var, free, at });
            }
        }
        if let Some(update) = update {
            self.visit(update, &mut end);
        }
        let before = std::mem::replace(state, State::dead());
        self.last_breaks = Some(State::merge_all(l.breaks.iter().cloned()));
        self.last_end = keep_end.then(|| end.clone());
        *state = State::merge_all([before, end].into_iter().chain(l.breaks));
    }

    fn do_statement(&mut self, node: Node<'t>, state: &mut State) {
        self.loops.push(Loop::default());
        if let Some(body) = node.field("body") {
            self.visit(body, state);
        }
        let l = self.loops.pop().unwrap_or_default();
        let taken = std::mem::replace(state, State::dead());
        let mut end = State::merge_all(std::iter::once(taken).chain(l.continues));
        if let Some(condition) = node.field("condition") {
            self.visit(condition, &mut end);
        }
        *state = State::merge_all(std::iter::once(end).chain(l.breaks));
    }

    fn switch_statement(&mut self, node: Node<'t>, state: &mut State) {
        if let Some(condition) = node.field("condition") {
            self.visit(condition, state);
        }
        let Some(body) = node.field("body") else {
            return;
        };
        self.loops.push(Loop {
            is_switch: true,
            ..Loop::default()
        });
        let start = state.clone();
        let mut fall = State::dead();
        let mut has_default = false;
        let mut cursor = body.walk();
        let cases: Vec<_> = body.named_children(&mut cursor).collect();
        for case in cases {
            if case.kind_name() != "case_statement" {
                self.visit(case, &mut fall);
                continue;
            }
            has_default |= case.field("value").is_none();
            let mut current = State::merge(start.clone(), fall);
            let mut inner = case.walk();
            let statements: Vec<_> = case
                .named_children(&mut inner)
                .filter(|c| Some(*c) != case.field("value"))
                .collect();
            for statement in statements {
                self.visit(statement, &mut current);
            }
            fall = current;
        }
        let l = self.loops.pop().unwrap_or_default();
        let skipped = if has_default { State::dead() } else { start };
        *state = State::merge_all([fall, skipped].into_iter().chain(l.breaks));
    }

    /// `#if`/`#ifdef` blocks inside a function are alternatives, not a sequence.
    fn preprocessor(&mut self, node: Node<'t>, state: &mut State) {
        let alternative = node.field("alternative");
        // `#if 0` code is never compiled.
        let never = node.kind_name() == "preproc_if"
            && node
                .field("condition")
                .is_some_and(|c| self.text(c).trim() == "0");
        if never {
            if let Some(alternative) = alternative {
                self.visit(alternative, state);
            }
            return;
        }
        let skip: Vec<_> = ["name", "condition", "alternative"]
            .iter()
            .filter_map(|f| node.field(f))
            .collect();
        let mut taken = state.clone();
        let mut cursor = node.walk();
        let statements: Vec<_> = node
            .named_children(&mut cursor)
            .filter(|c| !skip.contains(c))
            .collect();
        for statement in statements {
            self.visit(statement, &mut taken);
        }
        let mut other = state.clone();
        if let Some(alternative) = alternative {
            self.visit(alternative, &mut other);
        }
        *state = State::merge(taken, other);
    }

    /// The labeled statement at `range` (see `Declared::labels`).
    fn labeled(&self, range: &std::ops::Range<usize>) -> Option<Node<'t>> {
        let mut node = self
            .body
            .descendant_for_byte_range(range.start, range.end)?;
        while node.kind_name() != "labeled_statement" || node.byte_range() != *range {
            node = node.parent()?;
        }
        Some(node)
    }

    /// Follows a forward `goto` into its unwinding ladder and checks the exit it reaches.
    fn goto(&mut self, node: Node<'t>, state: &State) {
        let Some(label) = node.field("label").map(|l| self.text(l).to_owned()) else {
            return;
        };
        let Some(target) = self.labels.get(&label).and_then(|r| self.labeled(r)) else {
            return;
        };
        let backward = target.start_byte() < node.start_byte();
        if backward || self.gotos.iter().any(|(_, l)| *l == label) || self.gotos.len() > 16 {
            return;
        }
        self.gotos.push((ByteRange::of(node), label));
        let mut path = state.clone();
        self.continue_from(target, &mut path);
        if path.live {
            let end = ByteRange::new(self.body.end_byte().saturating_sub(1), self.body.end_byte());
            self.exit(None, end, &path);
        }
        self.gotos.pop();
    }

    /// Runs the statements from `label` to the end of the function, or gives up (leaving the
    /// path dead) when the label sits somewhere a straight walk cannot continue from.
    fn continue_from(&mut self, label: Node<'t>, state: &mut State) {
        let mut node = label;
        self.visit(node, state);
        loop {
            // What follows an `if`'s branch in the tree is its `else`, not what runs next.
            let in_if = node
                .parent()
                .is_some_and(|p| p.kind_name() == "if_statement");
            while let Some(next) = node.next_named_sibling().filter(|_| !in_if) {
                if !state.live {
                    return;
                }
                self.visit(next, state);
                node = next;
            }
            if !state.live {
                return;
            }
            let Some(parent) = node.parent() else { return };
            if parent.id() == self.body.id() {
                return;
            }
            match parent.kind_name() {
                "compound_statement" | "labeled_statement" => node = parent,
                _ => {
                    state.live = false;
                    return;
                }
            }
        }
    }

    /// What a condition tells about pointers and error codes on each branch.
    fn knowledge(&self, condition: Node, state: &State) -> (Vec<Known>, Vec<Known>) {
        let node = strip_parens(condition);
        match node.kind_name() {
            // A comma expression's value is its last operand.
            "comma_expression" => node
                .field("right")
                .map(|r| self.knowledge(r, state))
                .unwrap_or_default(),
            "unary_expression" if node.child(0).is_some_and(|o| self.text(o) == "!") => {
                let (t, f) = node
                    .field("argument")
                    .map(|a| self.knowledge(a, state))
                    .unwrap_or_default();
                (f, t)
            }
            "binary_expression" => {
                let Some((op, left, right)) = self.binary_parts(node) else {
                    return Default::default();
                };
                match op {
                    "&&" => {
                        let mut t = self.knowledge(left, state).0;
                        t.extend(self.knowledge(right, state).0);
                        (t, Vec::new())
                    }
                    "||" => {
                        let mut f = self.knowledge(left, state).1;
                        f.extend(self.knowledge(right, state).1);
                        (Vec::new(), f)
                    }
                    "==" | "!=" => {
                        let (value, other) = if self.is_zero(right) {
                            (left, right)
                        } else {
                            (right, left)
                        };
                        if !self.is_zero(other) {
                            return Default::default();
                        }
                        let (t, f) = self.knowledge(value, state);
                        if op == "==" {
                            (f, t)
                        } else {
                            (t, f)
                        }
                    }
                    "<" if self.is_zero(right) => (
                        self.int_known(left, IntValue::Error),
                        self.int_known(left, IntValue::NotError),
                    ),
                    // `if (ret >= 0) ret = -ENOMSG;`: past it, `ret` is an error either way.
                    ">=" if self.is_zero(right) => (
                        self.int_known(left, IntValue::NotError),
                        self.int_known(left, IntValue::Error),
                    ),
                    ">" if self.is_zero(left) => (
                        self.int_known(right, IntValue::Error),
                        self.int_known(right, IntValue::NotError),
                    ),
                    "<=" if self.is_zero(left) => (
                        self.int_known(right, IntValue::NotError),
                        self.int_known(right, IntValue::Error),
                    ),
                    // `if (i > 0)` on the first turn of `for (i = 0; ...)` is false.
                    ">" if self.is_zero(right) => (self.int_positive(left), Vec::new()),
                    "<" if self.is_zero(left) => (self.int_positive(right), Vec::new()),
                    _ => Default::default(),
                }
            }
            "call_expression" => {
                let name = callee_name(node, self.source).unwrap_or("");
                let args = call_arguments(node);
                if let Some(condition) = tested_condition(name, &args) {
                    return self.knowledge(condition, state);
                }
                match (name, args.first().copied()) {
                    (
                        "IS_ERR" | "IS_ERR_OR_NULL" | "ZERO_OR_NULL_PTR" | "PTR_ERR_OR_ZERO",
                        Some(arg),
                    ) => match self.key(arg) {
                        Some(k) => (vec![Known::Null(k.clone())], vec![Known::NonNull(k)]),
                        None => Default::default(),
                    },
                    _ => Default::default(),
                }
            }
            // `if (!(buf = kmalloc(...)))` tests what was just assigned.
            "assignment_expression" => node
                .field("left")
                .filter(|_| node.field("operator").is_some_and(|o| self.text(o) == "="))
                .map(|left| self.knowledge(left, state))
                .unwrap_or_default(),
            // `bool success = (p != NULL); if (!success) ...` tests `p`.
            "identifier" if state.conds.contains_key(self.text(node)) => {
                // The test is read without this local, so `ok = !ok` cannot loop.
                let mut without = state.clone();
                let test = without
                    .conds
                    .remove(self.text(node))
                    .and_then(|r| self.body.descendant_for_byte_range(r.start, r.end));
                let (mut t, mut f) = test
                    .map(|c| self.knowledge(c, &without))
                    .unwrap_or_default();
                let key = self.text(node).to_owned();
                if self.int_locals.contains(&key) {
                    t.push(Known::IntError(key.clone()));
                    f.push(Known::IntZero(key));
                }
                (t, f)
            }
            "subscript_expression" | "pointer_expression" => match self.element_key(node) {
                Some(element) => (
                    vec![Known::NonNull(element.clone())],
                    vec![Known::Null(element)],
                ),
                None => Default::default(),
            },
            "identifier" | "field_expression" => {
                let Some(key) = self.key(node) else {
                    return Default::default();
                };
                let mut t = vec![Known::NonNull(key.clone())];
                let mut f = vec![Known::Null(key.clone())];
                if self.int_locals.contains(&key) {
                    t.push(Known::IntError(key.clone()));
                    f.push(Known::IntZero(key));
                }
                (t, f)
            }
            _ => Default::default(),
        }
    }

    fn int_known(&self, node: Node, value: IntValue) -> Vec<Known> {
        match self.key(node).filter(|k| self.int_locals.contains(k)) {
            Some(k) if value == IntValue::Error => vec![Known::IntError(k)],
            Some(k) if value == IntValue::NotError => vec![Known::IntNotError(k)],
            Some(k) => vec![Known::IntZero(k)],
            None => Vec::new(),
        }
    }

    fn int_positive(&self, node: Node) -> Vec<Known> {
        self.key(node)
            .filter(|k| self.int_locals.contains(k))
            .map(Known::IntPositive)
            .into_iter()
            .collect()
    }

    fn is_zero(&self, node: Node) -> bool {
        let node = strip_parens(node);
        matches!(node.kind_name(), "null") || matches!(self.text(node), "0" | "NULL")
    }

    fn learn(&self, state: &mut State, known: &[Known]) {
        for k in known {
            match k {
                Known::Null(key) => {
                    // `err: if (p) kfree(p->buf);` on a path that tested `p` earlier.
                    if state.resources.get(key).is_some_and(|r| r.nonnull) {
                        state.live = false;
                        continue;
                    }
                    state
                        .resources
                        .retain(|k, r| !is_within(k, key) && !r.also.contains(key));
                    // NULL or an ERR_PTR: returning it reports the failure.
                    if !self.int_locals.contains(key) {
                        state.ints.insert(key.clone(), IntValue::Error);
                        // `clock = ptp_clock_register(&p->info, dev); if (IS_ERR(clock))`:
                        // the registration failed and kept nothing.
                        state.kept_nothing(key);
                    }
                }
                Known::NonNull(key) => {
                    if !self.int_locals.contains(key) {
                        state.ints.remove(key);
                    }
                    for (k, r) in state.resources.iter_mut() {
                        if k == key || r.also.contains(key) {
                            r.checked = true;
                            r.nonnull = true;
                        }
                    }
                }
                // A branch that contradicts what the path knows is never taken
                // (`ret = -ENOMEM; goto out; ... out: if (!ret) ...`).
                Known::IntError(key) => {
                    if state.ints.get(key) == Some(&IntValue::Zero) {
                        state.live = false;
                    }
                    // The call whose result `key` holds failed and kept nothing.
                    state.kept_nothing(key);
                    state.ints.insert(key.clone(), IntValue::Error);
                }
                Known::IntZero(key) => {
                    if state.ints.get(key) == Some(&IntValue::Error) {
                        state.live = false;
                    }
                    state.ints.insert(key.clone(), IntValue::Zero);
                }
                Known::IntPositive(key) => match state.ints.get(key) {
                    Some(IntValue::Zero) => state.live = false,
                    Some(IntValue::Error) => {}
                    _ => {
                        state.ints.insert(key.clone(), IntValue::NotError);
                    }
                },
                Known::IntNotError(key) => match state.ints.get(key) {
                    Some(IntValue::Error) => state.live = false,
                    Some(IntValue::Zero) => {}
                    _ => {
                        state.ints.insert(key.clone(), IntValue::NotError);
                    }
                },
            }
        }
    }

    /// True when `value` is what a C function returns on failure.
    fn is_error(&self, value: Option<Node>, state: &State) -> bool {
        let Some(value) = value.map(strip_parens) else {
            return false;
        };
        match value.kind_name() {
            "unary_expression" => value.child(0).is_some_and(|o| self.text(o) == "-"),
            // The grammar reads `-1` as one literal.
            "number_literal" => self.text(value).starts_with('-'),
            "null" | "false" => true,
            // A notifier's failure: `notifier_from_errno(-ENOMEM)`, `NOTIFY_BAD`.
            "call_expression" => matches!(
                callee_name(value, self.source),
                Some("ERR_PTR" | "ERR_CAST" | "PTR_ERR" | "notifier_from_errno")
            ),
            "identifier" => {
                let name = self.text(value);
                matches!(name, "NULL" | "false" | "NOTIFY_BAD")
                    || state.ints.get(name) == Some(&IntValue::Error)
                    || (is_constant_name(name) && self.failure_values().contains(name))
            }
            _ => false,
        }
    }

    /// See `Engine::failure_values`.
    fn failure_values(&self) -> &HashSet<String> {
        self.failure_values.get_or_init(|| {
            let mut allocated: HashSet<String> = HashSet::new();
            let mut tests: Vec<(Node, Node)> = Vec::new();
            let mut stack = vec![self.body];
            while let Some(node) = stack.pop() {
                match node.kind_name() {
                    "assignment_expression" | "init_declarator" => {
                        let (target, value) = if node.kind_name() == "init_declarator" {
                            (node.field("declarator"), node.field("value"))
                        } else {
                            (node.field("left"), node.field("right"))
                        };
                        if let (Some(target), Some(value)) = (target, value) {
                            if self.inputs.allocs.contains(&strip_parens(value).id()) {
                                allocated.extend(self.key(strip_parens(target)));
                            }
                        }
                    }
                    "if_statement" => {
                        if let (Some(c), Some(t)) =
                            (node.field("condition"), node.field("consequence"))
                        {
                            tests.push((c, t));
                        }
                    }
                    _ => {}
                }
                let mut cursor = node.walk();
                stack.extend(node.named_children(&mut cursor));
            }
            let start = State::start();
            let mut out = HashSet::new();
            for (condition, then) in tests {
                let failed = self
                    .knowledge(condition, &start)
                    .0
                    .iter()
                    .any(|k| matches!(k, Known::Null(key) if allocated.contains(key)));
                let last = match then.kind_name() {
                    "compound_statement" => then
                        .named_child_count()
                        .checked_sub(1)
                        .and_then(|last| then.named_child(last as u32)),
                    _ => Some(then),
                };
                let value = last
                    .filter(|l| l.kind_name() == "return_statement")
                    .and_then(|r| r.named_child(0))
                    .map(strip_parens)
                    .filter(|v| v.kind_name() == "identifier")
                    .map(|v| self.text(v));
                if let Some(value) = value.filter(|v| failed && is_constant_name(v)) {
                    out.insert(value.to_owned());
                }
            }
            out
        })
    }

    /// Classifies what a path returns: an error, success, or something the walk cannot tell.
    fn returns(&self, value: Option<Node>, at: ByteRange, state: &State) -> Returns {
        let end_of_function = self.source.get(at.start..at.end) == Some("}");
        match value.map(strip_parens) {
            None if end_of_function => Returns::Success,
            None => Returns::Unknown,
            Some(_) if self.is_error(value, state) => Returns::Error,
            Some(v) if matches!(self.text(v), "0" | "true") => Returns::Success,
            Some(v)
                if matches!(
                    state.ints.get(self.text(v)),
                    Some(IntValue::Zero | IntValue::NotError)
                ) =>
            {
                Returns::Success
            }
            Some(_) => Returns::Unknown,
        }
    }

    fn exit(&mut self, value: Option<Node>, at: ByteRange, state: &State) {
        let exit = Exit {
            ret: at,
            goto: self.gotos.first().cloned(),
        };
        let returns = self.returns(value, at, state);
        let calls = |lock: &str| -> Vec<ByteRange> {
            state
                .lock_calls
                .iter()
                .filter(|(l, _)| l == lock)
                .map(|(_, c)| *c)
                .collect()
        };
        for (lock, acquire) in &state.locks {
            self.report(Fact::LockHeld {
                lock: lock.clone(),
                acquire: *acquire,
                exit: exit.clone(),
                returns,
                calls: calls(lock),
            });
        }
        for (lock, acquire) in &state.taken {
            if state.locks.get(lock) != Some(acquire) {
                self.report(Fact::LockReleased {
                    lock: lock.clone(),
                    acquire: *acquire,
                    exit: exit.clone(),
                    returns,
                    calls: calls(lock),
                });
            }
        }
        // A local whose value the walk cannot tell (`return result;`), not an error it knows.
        let plain_local = value
            .map(strip_parens)
            .is_some_and(|v| v.kind_name() == "identifier" && self.locals.contains(self.text(v)));
        if returns == Returns::Success || (returns == Returns::Unknown && plain_local) {
            // Lent, then freed by the function itself, on a path that does not report a
            // failure: the callees it was lent to did not keep it.
            for r in state.resources.values() {
                if let (Some(alloc), Some(_), true) = (r.alloc, r.freed, r.lent) {
                    self.given_back.insert(alloc);
                }
            }
        }
        if returns == Returns::Success {
            for r in state.resources.values() {
                // Given to calls that say they keep it, then freed by the function itself: those
                // calls kept nothing (or the free would be a bug of its own).
                if let (Some(alloc), Some(_)) = (r.alloc, r.freed) {
                    self.not_kept.extend(r.given_to.iter().map(|&c| (alloc, c)));
                }
            }
        }
        let returned = value
            .map(|v| syntax::squash(self.text(v)))
            .unwrap_or_default();
        // `return buf;`, or `return cur;` where `cur = buf`.
        let returns_it = |key: &str, r: &Resource| {
            mentions(&returned, key) || r.also.iter().any(|a| mentions(&returned, a))
        };
        if returns == Returns::Error {
            for (key, &acquire) in &state.held {
                // `return np;` on an error path hands the reference to the caller.
                if self
                    .looked_up
                    .iter()
                    .any(|(var, k)| k == key && mentions(&returned, var))
                {
                    continue;
                }
                self.unreleased.push((key.clone(), acquire, exit.clone()));
            }
        }
        if !self.is_error(value, state) {
            // Any other return: memory the path never freed, stored, handed on or gave to any
            // call but a plain buffer or printing one (`strcpy(data, ...)`, `printf`) is lost.
            for (key, r) in &state.resources {
                let (Some(alloc), None, false, false, false) =
                    (r.alloc, r.freed, r.escaped, r.lent, r.passed)
                else {
                    continue;
                };
                // A path that reports success with the object neither handed on nor lent,
                // where another path hands it on (`list_add_tail(&new->list, ...)`), drops it.
                let later = self.handed_later(key, r);
                let dropped = returns == Returns::Success
                    && later.is_some_and(|first| exit.decision().start < first);
                if !self.locals.contains(key)
                    || self.auto_freed.contains(key)
                    || returns_it(key, r)
                    || (!dropped && (later.is_some() || !self.only_plain_uses(key)))
                {
                    continue;
                }
                self.report(Fact::Leak {
                    var: key.clone(),
                    alloc,
                    exit: exit.clone(),
                    normal: true,
                });
            }
            return;
        }
        for (key, r) in &state.resources {
            let escaped = r.escaped && !r.given_back_on_error() && !r.orphaned;
            let (Some(alloc), None) = (r.alloc, r.freed) else {
                continue;
            };
            if let Some(calls) = r.only_given_to().filter(|_| escaped && !r.torn) {
                // Reported only if every one of these calls is seen not to keep it (whatever
                // other paths do with it: they are not this one).
                if self.locals.contains(key)
                    && !self.auto_freed.contains(key)
                    && !returns_it(key, r)
                {
                    self.kept_leaks.push((
                        Fact::Leak {
                            var: key.clone(),
                            alloc,
                            exit: exit.clone(),
                            normal: false,
                        },
                        calls.to_vec(),
                    ));
                }
                continue;
            }
            if escaped {
                continue;
            }
            if r.lent && !r.torn && self.handed_later(key, r).is_none() {
                // Reported only if some path frees it after lending it and succeeds.
                self.lent_leaks.push(Fact::Leak {
                    var: key.clone(),
                    alloc,
                    exit: exit.clone(),
                    normal: false,
                });
                continue;
            }
            if !(self.locals.contains(key) || r.orphaned)
                || self.auto_freed.contains(key)
                || returns_it(key, r)
            {
                continue;
            }
            self.report(Fact::Leak {
                var: key.clone(),
                alloc,
                exit: exit.clone(),
                normal: false,
            });
        }
    }
}

/// The condition a call passes through as its value: `likely(c)`, `WARN_ON(c)`,
/// `WARN(c, fmt, ...)`; `drm_WARN_ON(drm, c)` and the upper-case `*_DBG(..., c)` macros take it
/// last, after the device; `drm_WARN(drm, c, fmt, ...)` second.
fn tested_condition<'t>(name: &str, args: &[Node<'t>]) -> Option<Node<'t>> {
    match name {
        "likely" | "unlikely" | "WARN_ON" | "WARN_ON_ONCE" | "WARN" | "WARN_ONCE" => {
            args.first().copied()
        }
        n if n.ends_with("_WARN_ON")
            || n.ends_with("_WARN_ON_ONCE")
            || (n.ends_with("_DBG") && n.chars().all(|c| !c.is_ascii_lowercase())) =>
        {
            args.last().copied()
        }
        n if n.ends_with("_WARN") || n.ends_with("_WARN_ONCE") => args.get(1).copied(),
        _ => None,
    }
}

/// The calls that give a block back and return a larger or smaller one in its place.
const REALLOCS: &[&str] = &[
    "realloc",
    "reallocarray",
    "krealloc",
    "krealloc_array",
    "kvrealloc",
];

/// The calls that free one block of memory and nothing it points to.
const PLAIN_FREES: &[&str] = &[
    "kfree",
    "kvfree",
    "vfree",
    "kfree_sensitive",
    "kvfree_sensitive",
    "free",
];

/// True for the list iterators that step to the next entry through the cursor itself
/// (`list_for_each_entry(pos, head, member)` reads `pos->member.next`), so that the body must
/// not free it; the `_safe` ones read the next entry before the body runs.
fn steps_through_cursor(name: &str) -> bool {
    (name.starts_with("list_for_each") || name.starts_with("hlist_for_each"))
        && !name.contains("safe")
}

/// The argument a list iterator walks, which it reads and does not assign:
/// `list_for_each_entry(pos, head, member)`, `list_for_each_safe(pos, n, head)`.
fn list_head(name: &str, count: usize) -> Option<usize> {
    (name.starts_with("list_for_each") || name.starts_with("hlist_for_each"))
        .then(|| count.checked_sub(if name.contains("entry") { 2 } else { 1 }))
        .flatten()
}

/// Which argument of a resource call (`FlowInputs::takes`, `puts`) names the resource: the
/// first, or for the bulk calls the second (the first is a count).
pub fn resource_argument(name: &str) -> usize {
    usize::from(name.contains("_bulk_"))
}

/// Whether a call's name says it tears something down (`snd_foo_free`, `foo_cleanup`,
/// `bar_disable`, `foo_put_resources`).
fn undoes(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "free",
        "release",
        "put",
        "disable",
        "cleanup",
        "clean_up",
        "remove",
        "destroy",
        "deinit",
        "uninit",
        "unprepare",
        "fini",
        "teardown",
        "shutdown",
        "unregister",
        "off",
        "stop",
        "exit",
        "unwind",
        "undo",
        "assert",
        "del",
        "delete",
        "halt",
    ]
    .iter()
    .any(|w| name.split('_').any(|part| part == *w) || (w.len() > 3 && name.contains(w)))
}

/// True when a teardown helper's name says which part it tears down, and that part is none of
/// the resources `FlowInputs::takes` tracks (clocks, regulators, IRQs, PCI enables, runtime-PM
/// references): `acme_eth_free_rings`, `foo_free_buffers`, `bar_unmap_dma`.
fn names_other_part(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "ring", "rings", "buf", "bufs", "buffer", "buffers", "queue", "queues", "desc", "descs",
        "skb", "skbs", "urb", "urbs", "table", "tables", "mem", "memory", "dma", "list", "lists",
        "pool", "pools", "cache", "caches", "fw", "firmware", "msg", "msgs",
    ];
    any_word(name, |w| PARTS.contains(&w))
}

/// True when the squashed expression `text` names the identifier `key` as a whole word.
fn mentions(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

/// True when two lock names reach the same fields from possibly different names of the object:
/// `&pool->lock` and `&limiter->pool->lock` (a callee's view of its caller's lock).
pub fn same_fields(a: &str, b: &str) -> bool {
    let path = |s: &str| s.find("->").map(|at| s[at..].to_owned());
    match (path(a), path(b)) {
        (Some(a), Some(b)) => a.ends_with(&b) || b.ends_with(&a),
        _ => false,
    }
}

/// True for initializers, which only fill in what they are given and neither keep it nor lend
/// it out: `INIT_WORK(&p->work, fn)`, `init_waitqueue_head(&p->wq)`, `timer_setup(&p->timer,
/// fn, 0)`.
pub(super) fn initializes(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("init_")
        || lower == "timer_setup"
        || (lower.ends_with("_init")
            && ["lock", "mutex", "sem", "kref", "queue_head"]
                .iter()
                .any(|w| lower.contains(w)))
}

/// True for the list calls that link their first argument into the list their second one
/// heads: only the first is handed on (`list_add_tail(&req->queue, &ep->queue)`).
fn links_first(name: &str) -> bool {
    ["list_add", "hlist_add", "list_move", "list_splice"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// True for calls that only read or write the bytes of a buffer during the call, test it or
/// print it: `memset`, `strcpy`, `snprintf`, `printf`, `pr_info`, `is_valid_ether_addr`. What
/// else a pointer is given to may keep it, even when its name says it reads or fills
/// (`usb_fill_bulk_urb()` with `URB_FREE_BUFFER` hands the buffer to the URB).
pub(super) fn only_reads(name: &str) -> bool {
    const PLAIN: &[&str] = &[
        "memset",
        "memcpy",
        "memmove",
        "memcmp",
        "strlen",
        "strnlen",
        "strcmp",
        "strncmp",
        "strcpy",
        "strncpy",
        "strscpy",
        "strlcpy",
        "strcat",
        "strncat",
        "strlcat",
        "sprintf",
        "snprintf",
        "scnprintf",
        "sscanf",
        "wcscpy",
        "wcslen",
        "wcsncpy",
        "printk",
        "puts",
        // A stream read, written or moved in by the C library, which does not keep it.
        "fgetc",
        "getc",
        "fgets",
        "fputc",
        "putc",
        "fputs",
        "fread",
        "fwrite",
        "fprintf",
        "fscanf",
        "fseek",
        "ftell",
        "rewind",
        "fflush",
        "feof",
        "ferror",
        "dev_err",
        "dev_warn",
        "dev_info",
        "dev_dbg",
        "dev_notice",
    ];
    PLAIN.contains(&name)
        || name.starts_with("print")
        || name.starts_with("pr_")
        || (name.starts_with("is_") && !name.contains("_and_"))
        || name.starts_with("get_unaligned")
        || fills(name)
        || edits_skb(name)
}

/// True for the socket-buffer helpers that work on the buffer they are given and keep
/// nothing: `skb_reserve`, `skb_put` (which appends data, releasing nothing), `skb_pull`,
/// `skb_put_data`; not the queue and list ones (`skb_queue_tail` keeps it), nor the frees.
fn edits_skb(name: &str) -> bool {
    name.starts_with("skb_")
        && !any_word(name, |w| {
            matches!(
                w,
                "queue"
                    | "append"
                    | "insert"
                    | "link"
                    | "unlink"
                    | "list"
                    | "free"
                    | "consume"
                    | "unref"
                    | "orphan"
                    | "get"
                    | "set"
                    | "dst"
            ) || w.starts_with("enqueue")
        })
}

/// True for a call whose name says it reads data into the buffer it is given during the call
/// (`acme_eeprom_read(nic, off, buf, len)`, `regmap_bulk_read()`), and nothing says it keeps it
/// or works in the background.
fn fills(name: &str) -> bool {
    any_word(name, |w| w == "read")
        && !any_word(name, |w| {
            keep_word(w) || release_word(w) || matches!(w, "async" | "start" | "begin" | "req")
        })
}

/// Calls that never return.
const NO_RETURN: &[&str] = &["exit", "_exit", "_Exit", "abort", "panic", "BUG", "do_exit"];

/// Words of a callee's name that say it keeps what it is given (stores, links, registers,
/// queues or sends it). Short words match whole (`set`, not `setup`); long ones as a prefix
/// (`registered`).
const KEEP_WORDS: &[&str] = &[
    "add", "set", "own", "link", "hold", "bind", "post", "send", "save", "store", "push", "queue",
    "xmit", "attach", "assign", "append", "insert", "submit",
];
const KEEP_STARTS: &[&str] = &["register", "enqueue", "install", "publish", "schedule"];
/// Words that say it releases what it is given, or passes it to something that will (a work
/// item, a timer, RCU).
const RELEASE_WORDS: &[&str] = &[
    "put", "del", "dec", "drop", "exit", "stop", "kill", "work", "hash", "rcu", "timer", "fini",
    "undo", "abort", "close", "kref", "unref", "unpin", "unmap", "unlink", "unbind", "detach",
    "cancel",
];
const RELEASE_STARTS: &[&str] = &[
    "delete",
    "unref",
    "unregister",
    "remove",
    "release",
    "destroy",
    "free",
    "uninit",
    "deinit",
    "cleanup",
    "teardown",
    "transfer",
    "notifier",
    "dispose",
    "discard",
    "kfree",
    "vfree",
    "kvfree",
];
const RELEASE_ENDS: &[&str] = &["put", "free", "release", "destroy"];

/// True when some `_`-separated word of `name`, lowercased, satisfies `test`.
fn any_word(name: &str, test: impl Fn(&str) -> bool) -> bool {
    name.to_ascii_lowercase()
        .split('_')
        .filter(|w| !w.is_empty())
        .any(test)
}

fn keep_word(w: &str) -> bool {
    KEEP_WORDS.contains(&w) || KEEP_STARTS.iter().any(|s| w.starts_with(s))
}

/// Words that make a keeping word a noun in the name of a query: `bnxt_hwrm_queue_cos2bw_qcfg()`
/// reads a queue's configuration into what it is given, `netdev_get_tx_queue()` looks one up.
const QUERY_WORDS: &[&str] = &["qcfg", "query", "qry", "get", "read", "show", "dump"];

/// True when some word of `name` says it keeps what it is given, and none says it is a query;
/// `insert` is no noun (`rhashtable_lookup_get_insert_fast()` inserts unless it finds one).
fn says_keeps(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split('_').filter(|w| !w.is_empty()).collect();
    (!words.iter().any(|q| QUERY_WORDS.contains(q)) || words.contains(&"insert"))
        && words.iter().any(|w| keep_word(w))
}

fn release_word(w: &str) -> bool {
    RELEASE_WORDS.contains(&w)
        || RELEASE_STARTS.iter().any(|s| w.starts_with(s))
        || RELEASE_ENDS.iter().any(|e| w.ends_with(e))
}

/// True when a callee's name says it keeps what it is given and does not release it
/// (`rpc_cb_add_xprt_release()` releases); `WRITE_ONCE(dst, p)` stores.
fn keeps(name: &str) -> bool {
    if edits_skb(name) || any_word(name, |w| RELEASE_ENDS.iter().any(|e| w.ends_with(e))) {
        return false;
    }
    name == "WRITE_ONCE" || (!initializes(name) && says_keeps(name))
}

/// True when a callee's name says it keeps what it is given (`list_add`, `device_register`,
/// `queue_work`, `xa_store`, `dev_set_drvdata`) or releases it (`put_device`, `fput`,
/// `foo_destroy`, `foo_detach`): the object is handed on. Any other callee is lent the object
/// for the call. Read word by word (`setup` is not `set`, `address` is not `add`).
fn keeps_or_releases(name: &str) -> bool {
    // `put_unaligned_le16(v, buf)`, `put_user(v, p)`: store a value through the pointer.
    let stores_value = ["put_unaligned", "put_user"]
        .iter()
        .any(|p| name.trim_start_matches('_').starts_with(p));
    if initializes(name) || stores_value || edits_skb(name) {
        return false;
    }
    name == "WRITE_ONCE" || says_keeps(name) || any_word(name, release_word)
}
