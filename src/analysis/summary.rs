//! What the functions of one file do with locks and memory, for their callers: a function that
//! releases a lock it was given (annotated `__releases(lock)`, or whose body releases a lock
//! reached from a parameter or a global without taking it) releases that lock at every call, and
//! a function that takes over what a parameter points to (frees it, drops its reference, stores
//! or links it) may free or keep the caller's object given there.
//!
//! The summaries are read from the whole file, so a function's findings depend on its callees in
//! the same file; `fingerprint` lets the function index treat every function as changed when a
//! summary changes.

use crate::analysis::syntax::Fields as _;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use tree_sitter::Node;

use super::syntax::{self, call_arguments, callee_name, declared_name, text};

/// Calls that release the lock given as their first argument (the releases of the
/// lock-imbalance query).
const RELEASES: &[&str] = &[
    "mutex_unlock",
    "spin_unlock",
    "spin_unlock_irq",
    "spin_unlock_irqrestore",
    "spin_unlock_bh",
    "raw_spin_unlock",
    "raw_spin_unlock_irq",
    "raw_spin_unlock_irqrestore",
    "raw_spin_unlock_bh",
    "read_unlock",
    "read_unlock_irq",
    "read_unlock_irqrestore",
    "read_unlock_bh",
    "write_unlock",
    "write_unlock_irq",
    "write_unlock_irqrestore",
    "write_unlock_bh",
    "up_read",
    "up_write",
    "up",
    "pthread_mutex_unlock",
    "release_sock",
    "__release",
];

/// True when a call named `callee` takes the lock given as its first argument. Tests and
/// assertions that name a lock (`mutex_is_locked()`, `lockdep_assert_held()`,
/// `spin_is_contended()`) take nothing.
pub fn takes_lock(callee: &str) -> bool {
    let asks = callee.starts_with("lockdep")
        || callee.contains("is_locked")
        || callee.contains("assert")
        || callee.contains("_held")
        || callee.contains("is_contended")
        || callee.contains("unlock")
        || callee.ends_with("_init");
    !asks && (callee.contains("lock") || callee.starts_with("down"))
}

/// A function that releases locks its caller holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Releaser {
    /// Its parameter names, in order (empty strings for unnamed ones).
    pub params: Vec<String>,
    /// The locks it releases, squashed, in terms of its parameters or globals.
    pub locks: Vec<String>,
    /// True when the function's header says so (`__releases(...)`), false when read from its body.
    pub annotated: bool,
}

/// The releasers of one file, by function name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockSummaries {
    pub releasers: BTreeMap<String, Releaser>,
    /// Functions defined in the file that take over (on some path) what a parameter points
    /// to, by name, with the positions of those parameters: they free it (`kfree(p)`, also
    /// through `container_of`/`to_*()`), drop a reference whose release frees it
    /// (`put_device(&p->dev)`), store it where it outlives the call (`*head = p`,
    /// `list_add(&p->list, ...)`), or give it to another such function of the file. A caller's
    /// object given there may be gone or owned elsewhere, so it is not leaked.
    pub takers: BTreeMap<String, Vec<usize>>,
    /// The takers that store or link the parameter (`*head = p`, `list_add(&p->list, ...)`)
    /// rather than free it: after such a call the object still exists, owned elsewhere.
    pub storers: BTreeMap<String, Vec<usize>>,
    /// Functions defined in the file that return an error when a parameter is NULL (`if (!p)
    /// return -EINVAL;`), or give it to such a function of the file, by name, with the
    /// positions of those parameters. A caller may hand them an allocation it has not
    /// tested and test their result instead.
    pub null_tolerant: BTreeMap<String, Vec<usize>>,
    /// Functions defined in the file that free what a parameter points to on every path
    /// (`kfree(p)` right before each `return` and before the closing brace), by name, with the
    /// positions of those parameters: after a call, the caller's object is gone.
    pub consumers: BTreeMap<String, Vec<usize>>,
    /// Functions defined in the file that only borrow what a parameter points to, by name, with
    /// the positions of those parameters: they read and write through it (`p->x = y`), test it,
    /// lock its locks and give it only to calls that do the same (`memset`, `pr_info`, another
    /// borrower of the file); they never store, link, free, return or hand it elsewhere. A
    /// caller's object given there is neither kept nor lent.
    pub borrowers: BTreeMap<String, Vec<usize>>,
    /// True unless the file is a user-space program (it defines `main()`) that never tests an
    /// allocation's result for NULL right after it: kernel code believes allocations fail, a
    /// host build tool that lets the process die on `malloc()` failure does not.
    pub tests_allocations: bool,
}

impl LockSummaries {
    /// A hash of every summary: equal for two versions of a file whose functions release the
    /// same locks.
    pub fn fingerprint(&self) -> u64 {
        let mut all = String::new();
        for (name, r) in &self.releasers {
            all.push_str(name);
            all.push('(');
            all.push_str(&r.params.join(","));
            all.push(')');
            all.push_str(&r.locks.join(","));
            all.push(if r.annotated { '!' } else { ';' });
        }
        for (name, params) in &self.takers {
            all.push_str(name);
            all.push_str(&format!("{params:?}"));
        }
        for (name, params) in &self.storers {
            all.push_str(name);
            all.push_str(&format!("+{params:?}"));
        }
        for (name, params) in &self.null_tolerant {
            all.push_str(name);
            all.push_str(&format!("?{params:?}"));
        }
        for (name, params) in &self.consumers {
            all.push_str(name);
            all.push_str(&format!("-{params:?}"));
        }
        for (name, params) in &self.borrowers {
            all.push_str(name);
            all.push_str(&format!("&{params:?}"));
        }
        all.push(if self.tests_allocations { 'T' } else { 'F' });
        xxhash_rust::xxh3::xxh3_64(all.as_bytes())
    }
}

/// The summaries of the file that `node` belongs to, computed once per file and thread: a check
/// walks every function of a file with the same tree and text.
pub fn for_file(node: Node, source: &str) -> Rc<LockSummaries> {
    let root = syntax::root(node);
    /// The file last summarized on this thread: its text's address and length and its tree's
    /// root, with the summaries.
    type Last = Option<((usize, usize, usize), Rc<LockSummaries>)>;
    thread_local! {
        static LAST: RefCell<Last> = const { RefCell::new(None) };
    }
    if let Some(pinned) = PINNED.with(|p| p.borrow().clone()) {
        return pinned;
    }
    let key = (source.as_ptr() as usize, source.len(), root.id());
    LAST.with(|last| {
        if let Some((k, summaries)) = last.borrow().as_ref() {
            if *k == key {
                return summaries.clone();
            }
        }
        let summaries = Rc::new(summarize(root, source));
        *last.borrow_mut() = Some((key, summaries.clone()));
        summaries
    })
}

thread_local! {
    /// Summaries that `for_file` returns whatever it is asked (see `with_pinned`).
    static PINNED: RefCell<Option<Rc<LockSummaries>>> = const { RefCell::new(None) };
}

/// Runs `f` with `summaries` standing for the file of every function checked on this thread:
/// fix verification checks one edited function on its own, and its callees are still those of
/// the file it came from.
pub fn with_pinned<T>(summaries: Rc<LockSummaries>, f: impl FnOnce() -> T) -> T {
    struct Unpin(Option<Rc<LockSummaries>>);
    impl Drop for Unpin {
        fn drop(&mut self) {
            let previous = self.0.take();
            PINNED.with(|p| *p.borrow_mut() = previous);
        }
    }
    let _unpin = Unpin(PINNED.with(|p| p.borrow_mut().replace(summaries)));
    f()
}

/// Reads the summaries of every function defined or declared under `root`.
pub fn summarize(root: Node, source: &str) -> LockSummaries {
    summarize_listed(root, source, &|_| None)
}

/// The named nodes of a function definition (`syntax::named_nodes`), where the caller has
/// listed them already.
pub type Listed<'a, 't> = &'a dyn Fn(Node<'t>) -> Option<&'a [(Node<'t>, usize)]>;

/// `summarize`, reading a definition's body from the nodes `listed` gives for it (a check lists
/// every function's nodes for its own walks), else walking it.
pub fn summarize_listed<'t>(
    root: Node<'t>,
    source: &'t str,
    listed: Listed<'_, 't>,
) -> LockSummaries {
    let mut out = LockSummaries {
        tests_allocations: file_tests_allocations(root, source),
        ..LockSummaries::default()
    };
    let mut stack = vec![root];
    let mut items = Vec::new();
    while let Some(node) = stack.pop() {
        match node.kind_name() {
            "function_definition" | "declaration" => items.push(node),
            kind if kind == "translation_unit" || super::functions::holds_definitions(kind) => {
                let mut cursor = node.walk();
                stack.extend(node.named_children(&mut cursor));
            }
            _ => {}
        }
    }
    // The summaries follow calls between the file's own functions only.
    let defined: BTreeSet<&str> = items
        .iter()
        .filter(|n| n.kind_name() == "function_definition")
        .filter_map(|n| function_declarator(*n)?.field("declarator"))
        .map(|n| text(n, source))
        .collect();
    // A summary is looked up by a name the code of a function of the file gives: a call, an
    // argument, a release callback assigned. A function named in none (a callback only an
    // operations table at file scope names) is never looked up, and is not read.
    let named = named_in_bodies(&items, source, &defined);
    let mut readings = Vec::new();
    for node in items {
        let reading = (node.kind_name() == "function_definition")
            .then(|| {
                let name = function_declarator(node)?.field("declarator")?;
                named
                    .contains(text(name, source))
                    .then(|| read(node, source, &defined, listed))
                    .flatten()
            })
            .flatten();
        if let Some((name, releaser)) = releaser(node, source, reading.as_ref()) {
            // A definition's body says more than a prototype's annotation.
            match out.releasers.get(&name) {
                Some(known) if known.locks.len() >= releaser.locks.len() => {}
                _ => {
                    out.releasers.insert(name, releaser);
                }
            }
        }
        readings.extend(reading);
    }
    out.takers = per_parameter(&readings, |r| &r.freed, |c| &c.objects);
    out.storers = per_parameter(&readings, |r| &r.stored, |c| &c.objects);
    out.null_tolerant = per_parameter(&readings, |r| &r.tested, |c| &c.plain);
    // Every parameter a function lets go of, itself or through the file's functions it gives
    // it to, however deep the chain: the rest are borrowed.
    let escapes = per_parameter_rounds(&readings, |r| &r.escapes, |c| &c.objects, usize::MAX);
    for reading in &readings {
        let lets_go = escapes.get(reading.name);
        let borrowed: Vec<usize> = (0..reading.params)
            .filter(|i| !lets_go.is_some_and(|e| e.contains(i)))
            .collect();
        if !borrowed.is_empty() {
            out.borrowers.insert(reading.name.to_owned(), borrowed);
        }
    }
    for reading in &readings {
        if !reading.consumed.is_empty() {
            out.consumers.insert(
                reading.name.to_owned(),
                reading.consumed.iter().copied().collect(),
            );
        }
    }
    out
}

/// The names among `defined` that the bodies of the function definitions among `items` hold
/// as a word (in code, comments or literals: more names only means more functions read).
fn named_in_bodies<'s>(
    items: &[Node],
    source: &'s str,
    defined: &BTreeSet<&'s str>,
) -> BTreeSet<&'s str> {
    // Most words of a body are not the name of a function of the file: a word is looked up only
    // when a defined name has its first letter and its length.
    let mut firsts = [false; 256];
    let mut lengths: u128 = 0;
    for name in defined {
        firsts[usize::from(name.as_bytes()[0])] = true;
        lengths |= 1 << name.len().min(127);
    }
    let mut named = BTreeSet::new();
    for body in items.iter().filter_map(|n| n.field("body")) {
        let code = text(body, source);
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &code[start..i];
                if firsts[usize::from(bytes[start])]
                    && lengths & (1 << word.len().min(127)) != 0
                    && defined.contains(word)
                {
                    named.insert(word);
                }
            } else {
                i += 1;
            }
        }
    }
    named
}

/// `LockSummaries::tests_allocations` of the file that `node` belongs to, read without the
/// rest of the summaries (a glance at the file's top level for `main()`).
pub fn file_tests_allocations(node: Node, source: &str) -> bool {
    let root = syntax::root(node);
    !defines_main(root, source) || tests_allocations(root, source)
}

/// True when the file defines `main()`: a user-space program (a host build tool in a kernel
/// tree), not kernel code.
fn defines_main(root: Node, source: &str) -> bool {
    let mut cursor = root.walk();
    let found = root.named_children(&mut cursor).any(|n| {
        n.kind_name() == "function_definition"
            && function_declarator(n)
                .and_then(|d| d.field("declarator"))
                .is_some_and(|name| text(name, source) == "main")
    });
    found
}

/// True when an allocation's result is tested in the condition that holds it
/// (`if (!(p = kmalloc(...)))`) or in the `if` right after it (`p = kmalloc(...); if (!p)`).
fn tests_allocations(root: Node, source: &str) -> bool {
    let allocator = |call: Node| {
        callee_name(call, source).is_some_and(|n| {
            n.contains("alloc")
                || matches!(n, "kmemdup" | "kstrdup" | "kstrndup" | "strdup" | "strndup")
        })
    };
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let assigned = syntax::assignment(node).and_then(|(target, value)| {
            let target = match node.kind_name() {
                "init_declarator" => declared_name(target)?,
                _ => target,
            };
            Some((target, syntax::strip_parens(value)))
        });
        if let Some((target, value)) = assigned {
            if value.kind_name() == "call_expression" && allocator(value) {
                let name = text(target, source);
                // The statement that holds the allocation, and the one after it.
                let mut statement = node;
                while let Some(parent) = statement.parent() {
                    if matches!(
                        parent.kind_name(),
                        "compound_statement" | "translation_unit"
                    ) {
                        break;
                    }
                    let in_condition = parent
                        .field("condition")
                        .is_some_and(|c| c.id() == statement.id());
                    if parent.kind_name() == "if_statement" && in_condition {
                        return true;
                    }
                    statement = parent;
                }
                if syntax::next_code_sibling(statement).is_some_and(|n| {
                    n.kind_name() == "if_statement"
                        && n.field("condition")
                            .is_some_and(|c| text(c, source).contains(name))
                }) {
                    return true;
                }
            }
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    false
}

/// The releaser `node` (a definition, read as `reading`, or a prototype) is, if it is one.
fn releaser(node: Node, source: &str, reading: Option<&Reading>) -> Option<(String, Releaser)> {
    let body = node.field("body");
    let header_end = body.map_or(node.end_byte(), |b| b.start_byte());
    let header = source.get(node.start_byte()..header_end).unwrap_or("");
    let annotated = annotation_arguments(header, "__releases(");
    if body.is_none() && annotated.is_empty() {
        return None;
    }
    let declarator = function_declarator(node)?;
    let name = declarator
        .field("declarator")
        .filter(|n| n.kind_name() == "identifier")?;
    let params = parameter_names(declarator, source);
    let mut locks = annotated.clone();
    if let Some(reading) = reading {
        // A lock reached from one of the callee's own locals (`nlk = nlk_sk(sk)`) is kept too:
        // the caller matches it by its fields (`->nl_cb_mutex`).
        for lock in reading.released.difference(&reading.taken_locks) {
            if !locks.contains(lock) {
                locks.push(lock.clone());
            }
        }
    }
    if locks.is_empty() {
        return None;
    }
    Some((
        text(name, source).to_owned(),
        Releaser {
            params,
            locks,
            annotated: !annotated.is_empty(),
        },
    ))
}

/// Function names, each with the positions of some of its parameters.
type PerParameter = BTreeMap<String, Vec<usize>>;

/// What one definition does with its parameters, read in one walk of its body: the
/// per-parameter summaries are computed from it, round after round, without walking again.
struct Reading<'t> {
    name: &'t str,
    /// The parameters it frees, drops or takes over by itself (stores and links included).
    freed: BTreeSet<usize>,
    /// The parameters it stores or links where they outlive the call.
    stored: BTreeSet<usize>,
    /// The parameters it tests for NULL and then returns an error for.
    tested: BTreeSet<usize>,
    /// The parameters it frees on every path (see `consumed`).
    consumed: BTreeSet<usize>,
    /// The parameters it may let go of by itself (see `lets_go`); those it gives to the file's
    /// functions are in `calls`. Unnamed parameters are let go.
    escapes: BTreeSet<usize>,
    /// How many parameters it has.
    params: usize,
    /// Its calls to other functions, in source order.
    calls: Vec<CallReading<'t>>,
    /// The locks it releases and takes (the first arguments of such calls, squashed).
    released: BTreeSet<String>,
    taken_locks: BTreeSet<String>,
}

/// A call in a definition's body, with what each argument is in the caller's terms.
struct CallReading<'t> {
    callee: &'t str,
    /// The parameter whose object each argument is, through aliases and embedding (`&p->dev`).
    objects: Vec<Option<usize>>,
    /// The parameter each argument is, by name.
    plain: Vec<Option<usize>>,
}

/// A per-parameter summary of every definition: its own positions (`own`) and those it gives
/// to functions of the file already in the summary (`args` of each call), read again until
/// nothing changes (at most four rounds: a chain of helpers a few calls deep).
fn per_parameter<'t>(
    readings: &[Reading<'t>],
    own: impl for<'r> Fn(&'r Reading<'t>) -> &'r BTreeSet<usize>,
    args: impl for<'r> Fn(&'r CallReading<'t>) -> &'r Vec<Option<usize>>,
) -> PerParameter {
    per_parameter_rounds(readings, own, args, 4)
}

/// `per_parameter`, read at most `rounds` times (the sets only grow, so it ends unbounded too).
fn per_parameter_rounds<'t>(
    readings: &[Reading<'t>],
    own: impl for<'r> Fn(&'r Reading<'t>) -> &'r BTreeSet<usize>,
    args: impl for<'r> Fn(&'r CallReading<'t>) -> &'r Vec<Option<usize>>,
    rounds: usize,
) -> PerParameter {
    let mut out: PerParameter = BTreeMap::new();
    for _round in 0..rounds {
        let mut changed = false;
        for reading in readings {
            let mut taken = own(reading).clone();
            // Two definitions of one name (`#ifdef` variants): either may run.
            taken.extend(out.get(reading.name).into_iter().flatten());
            for call in &reading.calls {
                if call.callee == reading.name {
                    continue;
                }
                if let Some(positions) = out.get(call.callee) {
                    let given = args(call);
                    taken.extend(
                        positions
                            .iter()
                            .filter_map(|&at| given.get(at).copied().flatten()),
                    );
                }
            }
            if taken.is_empty() {
                continue;
            }
            let taken: Vec<usize> = taken.into_iter().collect();
            if out.get(reading.name) != Some(&taken) {
                out.insert(reading.name.to_owned(), taken);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// Calls that free the memory given as their first argument.
const FREES: &[&str] = &["kfree", "kvfree", "vfree", "kfree_sensitive", "kzfree"];

/// True when a call named `name` drops or frees what its first argument is: `put_device`,
/// `kref_put`, `fput`, `foo_release`, `foo_destroy`, `usb_free_urb`.
fn releases_first(name: &str) -> bool {
    FREES.contains(&name)
        || name.split('_').any(|w| {
            matches!(
                w,
                "put"
                    | "release"
                    | "destroy"
                    | "unref"
                    | "free"
                    | "kfree"
                    | "vfree"
                    | "kvfree"
                    | "fput"
            )
        })
}

/// Reads what the function defined by `node` does with its parameters, in one walk of its body
/// in source order (so that an alias is known before its use):
/// - it takes over (`freed`) a parameter's object when it frees or releases it (`kfree(p)`,
///   also through `container_of`/`to_*()` and local aliases), or drops a reference to an object
///   embedded in it (`put_device(&p->dev)`: the release callback frees the whole);
/// - it stores (`stored`, and so takes over) a parameter where the caller or another of its
///   objects keeps it (`*head = p`, `other->next = p`) or links it (`list_add(&p->list, ...)`);
///   a store into the function's own locals (`child->parent = p`) or into `*p` itself is not one;
/// - it tests (`tested`) a parameter for NULL and then returns an error (`if (!p) return
///   -EINVAL;`); a test that only skips work (`if (p) memcpy(p, ...); return 0;`) is not one:
///   its caller sees success either way (see `LockSummaries::null_tolerant`);
/// - and its calls to the functions `defined` in the file, for what it gives them
///   (`per_parameter`).
fn read<'t>(
    node: Node<'t>,
    source: &'t str,
    defined: &BTreeSet<&str>,
    listed: Listed<'_, 't>,
) -> Option<Reading<'t>> {
    let body = node.field("body")?;
    let declarator = function_declarator(node)?;
    let name = declarator
        .field("declarator")
        .filter(|n| n.kind_name() == "identifier")?;
    let params = parameter_names(declarator, source);
    let param = |n: Node| -> Option<usize> {
        let n = syntax::strip_parens(n);
        (n.kind_name() == "identifier")
            .then(|| {
                params
                    .iter()
                    .position(|p| !p.is_empty() && p == text(n, source))
            })
            .flatten()
    };
    // Locals that name a parameter's object: `struct x *a = to_x(p)`, `container_of(p, ...)`,
    // `q = p`.
    let mut aliases: BTreeMap<String, usize> = BTreeMap::new();
    // The parameter whose object `arg` is: the parameter itself (or an alias of it), or with
    // `embedded`, also an object embedded in it (`&p->dev`).
    let param_of =
        |arg: Node, aliases: &BTreeMap<String, usize>, embedded: bool| -> Option<usize> {
            let mut arg = syntax::strip_parens(arg);
            while arg.kind_name() == "cast_expression" {
                arg = syntax::strip_parens(arg.field("value")?);
            }
            let mut base = arg;
            if embedded
                && arg.kind_name() == "pointer_expression"
                && arg
                    .field("operator")
                    .is_some_and(|o| text(o, source) == "&")
            {
                base = syntax::strip_parens(arg.field("argument")?);
                while base.kind_name() == "field_expression" {
                    base = syntax::strip_parens(base.field("argument")?);
                }
            }
            if base.kind_name() != "identifier" {
                return None;
            }
            let base = text(base, source);
            params
                .iter()
                .position(|p| !p.is_empty() && p == base)
                .or_else(|| aliases.get(base).copied())
        };
    let mut reading = Reading {
        name: text(name, source),
        freed: BTreeSet::new(),
        stored: BTreeSet::new(),
        tested: BTreeSet::new(),
        consumed: BTreeSet::new(),
        escapes: params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_empty())
            .map(|(i, _)| i)
            .collect(),
        params: params.len(),
        calls: Vec::new(),
        released: BTreeSet::new(),
        taken_locks: BTreeSet::new(),
    };
    // For `consumed`: the returns, and the names assigned anywhere.
    let mut returns = Vec::new();
    let mut assigned: BTreeSet<&str> = BTreeSet::new();
    // `path` holds the current node's ancestors, the body first (a node's `parent()` costs a
    // walk down from the root).
    let mut path: Vec<Node<'t>> = Vec::new();
    let own;
    let nodes = match listed(node) {
        Some(nodes) => syntax::subtree(nodes, body),
        None => {
            own = syntax::named_nodes(body);
            &own[..]
        }
    };
    let base = nodes.first().map_or(0, |n| n.1);
    for &(n, depth) in nodes {
        path.truncate(depth - base);
        match n.kind_name() {
            "return_statement" => returns.push(n),
            "update_expression" => {
                if let Some(argument) = n.field("argument").map(syntax::strip_parens) {
                    assigned.insert(text(argument, source));
                }
            }
            "init_declarator" | "assignment_expression" => {
                if n.kind_name() == "assignment_expression" {
                    if let Some(left) = n.field("left").map(syntax::strip_parens) {
                        assigned.insert(text(left, source));
                    }
                }
                let (left, right) = match n.kind_name() {
                    "init_declarator" => (
                        n.field("declarator").and_then(declared_name),
                        n.field("value"),
                    ),
                    _ => (n.field("left"), n.field("right")),
                };
                if let (Some(left), Some(right)) = (left, right) {
                    let right = syntax::strip_parens(right);
                    let converted = (right.kind_name() == "call_expression")
                        .then(|| {
                            let callee = callee_name(right, source)?;
                            let converts = callee.starts_with("to_")
                                || callee.starts_with("container_of")
                                || callee == "list_entry";
                            converts.then(|| call_arguments(right).first().copied())?
                        })
                        .flatten();
                    let value = converted.unwrap_or(right);
                    if let Some(i) = param_of(value, &aliases, false) {
                        let is_param = |n: Node| params.iter().any(|p| p == text(n, source));
                        if left.kind_name() == "identifier" && !is_param(left) {
                            aliases.insert(text(left, source).to_owned(), i);
                        } else if converted.is_none() && value.kind_name() == "identifier" {
                            let mut target = syntax::strip_parens(left);
                            let mut through = false;
                            while let Some(inner) = target.field("argument") {
                                through = true;
                                target = syntax::strip_parens(inner);
                            }
                            if through
                                && target.kind_name() == "identifier"
                                && is_param(target)
                                && param_of(target, &aliases, false) != Some(i)
                            {
                                reading.stored.insert(i);
                            }
                        }
                    }
                }
            }
            "call_expression" => {
                let callee = callee_name(n, source).unwrap_or("");
                let args = call_arguments(n);
                let first = |embedded| args.first().and_then(|a| param_of(*a, &aliases, embedded));
                if releases_first(callee) {
                    reading.freed.extend(first(false));
                }
                if callee.split('_').any(|w| w == "put" || w == "fput") {
                    reading.freed.extend(first(true));
                }
                if callee.starts_with("list_add") || callee.starts_with("hlist_add") {
                    reading.stored.extend(first(true));
                }
                if let Some(arg) = args.first() {
                    if RELEASES.contains(&callee) {
                        reading.released.insert(syntax::squash(text(*arg, source)));
                    } else if takes_lock(callee) {
                        reading
                            .taken_locks
                            .insert(syntax::squash(text(*arg, source)));
                    }
                }
                if defined.contains(callee) {
                    reading.calls.push(CallReading {
                        callee,
                        objects: args.iter().map(|a| param_of(*a, &aliases, true)).collect(),
                        plain: args.iter().map(|a| param(*a)).collect(),
                    });
                }
            }
            "identifier" => {
                let name = text(n, source);
                if let Some(i) = params.iter().position(|p| p == name) {
                    if !reading.escapes.contains(&i) && lets_go(n, &path, source, defined) {
                        reading.escapes.insert(i);
                    }
                }
            }
            "if_statement" => {
                let fails = n
                    .field("consequence")
                    .is_some_and(|c| returns_error(c, source));
                if fails {
                    if let Some(condition) = n.field("condition") {
                        null_when_true(condition, source, &param, &mut reading.tested);
                    }
                }
            }
            _ => {}
        }
        path.push(n);
    }
    let stored = reading.stored.clone();
    reading.freed.extend(stored);
    if !reading.freed.is_empty() {
        reading.consumed = consumed(body, source, &params, &returns, &assigned);
    }
    Some(reading)
}

/// True when the use `n` of a parameter (under `ancestors`, the body first) may let go of
/// what it points to: anything but reading
/// or writing through it (`p->x`, `*p`, `p[i]`), testing it (`!p`, `p == q`, `if (p)`),
/// `sizeof`, or giving it to a function of the file (read in `calls`) or to a call that only
/// reads, fills, prints, initializes or locks (`memset(p, ...)`, `mutex_lock(&p->lock)`).
/// Copying it (`q = p`), returning it, taking its address and pointer arithmetic let go.
fn lets_go(n: Node, ancestors: &[Node], source: &str, defined: &BTreeSet<&str>) -> bool {
    // The ancestor at `at` and the nearest above it that is no parenthesis or cast: the node
    // the expression at `at` is part of, with the index of what it holds.
    let above = |mut at: usize| -> Option<usize> {
        while at > 0
            && matches!(
                ancestors[at - 1].kind_name(),
                "parenthesized_expression" | "cast_expression"
            )
        {
            at -= 1;
        }
        at.checked_sub(1)
    };
    let operator = |n: Node| n.field("operator").map(|o| text(o, source));
    // A call that only reads, prints, tests, initializes or locks what it is given, or a
    // function of the file (whose own reading says), given `ancestors[args]` as arguments.
    let benign_call = |args: usize| -> bool {
        let Some(call) = args
            .checked_sub(1)
            .map(|c| ancestors[c])
            .filter(|c| c.kind_name() == "call_expression")
        else {
            return false;
        };
        let callee = callee_name(call, source).unwrap_or("");
        defined.contains(callee)
            || super::flow::only_reads(callee)
            || super::flow::initializes(callee)
            || takes_lock(callee)
            || RELEASES.contains(&callee)
            || callee.starts_with("IS_ERR")
            || callee.starts_with("WARN")
            || matches!(callee, "BUG_ON" | "likely" | "unlikely")
    };
    // The identifier is the node past the last ancestor.
    let Some(at) = above(ancestors.len()) else {
        return true;
    };
    let parent = ancestors[at];
    let top = ancestors.get(at + 1).copied().unwrap_or(n);
    let is = |field: &str| parent.field(field).is_some_and(|f| f.id() == top.id());
    match parent.kind_name() {
        "field_expression" if is("argument") => {
            // `&p->member` given to a call may link the object by its member.
            let mut member = at;
            while member > 0
                && matches!(
                    ancestors[member - 1].kind_name(),
                    "field_expression" | "subscript_expression"
                )
            {
                member -= 1;
            }
            let address = member.checked_sub(1).filter(|&a| {
                ancestors[a].kind_name() == "pointer_expression"
                    && operator(ancestors[a]) == Some("&")
            });
            match address {
                None => false,
                Some(address) => above(address).is_none_or(|args| {
                    ancestors[args].kind_name() != "argument_list" || !benign_call(args)
                }),
            }
        }
        "subscript_expression" => !is("argument"),
        "pointer_expression" => operator(parent) != Some("*"),
        "unary_expression" => operator(parent) != Some("!"),
        "binary_expression" => !matches!(operator(parent), Some("==" | "!=" | "&&" | "||")),
        "if_statement" | "while_statement" | "do_statement" | "for_statement" => false,
        "conditional_expression" => !is("condition"),
        "sizeof_expression" | "update_expression" => false,
        "assignment_expression" => !is("left"),
        "argument_list" => !benign_call(at),
        _ => true,
    }
}

/// The parameters that a function body frees on every path: the statement right before each
/// `return`, and the last statement when the body can fall off its end, is `kfree(p)` (or
/// another plain free) of the parameter, never assigned in the body. A free under a condition,
/// a `return` that is the whole branch of an `if`, or a parameter assigned anywhere makes it
/// no consumer: only what the code states on every exit counts. `returns` and `assigned` (the
/// names written anywhere in the body) come from `read`'s walk.
fn consumed<'t>(
    body: Node<'t>,
    source: &str,
    params: &[String],
    returns: &[Node<'t>],
    assigned: &BTreeSet<&str>,
) -> BTreeSet<usize> {
    let skip_comments = |mut n: Option<Node<'t>>| -> Option<Node<'t>> {
        while let Some(c) = n.filter(|c| c.kind_name() == "comment") {
            n = c.prev_named_sibling();
        }
        n
    };
    // The parameter a statement frees: `kfree(p);`.
    let frees = |statement: Node| -> Option<usize> {
        let call = Some(statement)
            .filter(|s| s.kind_name() == "expression_statement")?
            .named_child(0)
            .filter(|c| c.kind_name() == "call_expression")?;
        if !FREES.contains(&callee_name(call, source)?) {
            return None;
        }
        let arg = syntax::strip_parens(*call_arguments(call).first()?);
        (arg.kind_name() == "identifier")
            .then(|| {
                params
                    .iter()
                    .position(|p| !p.is_empty() && p == text(arg, source))
            })
            .flatten()
    };
    // The parameters freed by the run of frees that ends with `statement` (`kfree(a);
    // kfree(b);` before a `return`).
    let freed_before = |statement: Option<Node<'t>>| -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut at = skip_comments(statement);
        while let Some(i) = at.and_then(frees) {
            out.insert(i);
            at = skip_comments(at.and_then(|s| s.prev_named_sibling()));
        }
        out
    };
    let mut exits: Vec<BTreeSet<usize>> = returns
        .iter()
        .map(|r| freed_before(r.prev_named_sibling()))
        .collect();
    let mut cursor = body.walk();
    let last = body
        .named_children(&mut cursor)
        .filter(|n| n.kind_name() != "comment")
        .last();
    if last.is_some_and(|l| l.kind_name() != "return_statement") {
        exits.push(freed_before(last));
    }
    let Some(mut every) = exits.first().cloned() else {
        return BTreeSet::new();
    };
    for exit in &exits[1..] {
        every.retain(|i| exit.contains(i));
    }
    every.retain(|&i| !assigned.contains(params[i].as_str()));
    every
}

/// Adds to `out` the parameters that `condition` being true says are NULL: `!p`, `p == NULL`,
/// `IS_ERR_OR_NULL(p)`, either side of `||`.
fn null_when_true(
    condition: Node,
    source: &str,
    param: &dyn Fn(Node) -> Option<usize>,
    out: &mut BTreeSet<usize>,
) {
    let is_null = |n: Node| matches!(text(syntax::strip_parens(n), source), "NULL" | "0");
    // A work list, not recursion: a condition may chain thousands of `||`.
    let mut work = vec![condition];
    while let Some(n) = work.pop() {
        let n = syntax::strip_parens(n);
        match n.kind_name() {
            "unary_expression" if n.child(0).is_some_and(|o| text(o, source) == "!") => {
                out.extend(n.field("argument").and_then(param));
            }
            "binary_expression" => {
                let op = n.field("operator").map(|o| text(o, source));
                let (Some(left), Some(right)) = (n.field("left"), n.field("right")) else {
                    continue;
                };
                match op {
                    Some("==") if is_null(right) => out.extend(param(left)),
                    Some("==") if is_null(left) => out.extend(param(right)),
                    Some("||") => work.extend([left, right]),
                    _ => {}
                }
            }
            "call_expression" => {
                let callee = callee_name(n, source).unwrap_or("");
                let first = call_arguments(n).first().copied();
                match (callee, first) {
                    ("IS_ERR_OR_NULL" | "ZERO_OR_NULL_PTR", Some(a)) => out.extend(param(a)),
                    ("unlikely" | "likely" | "WARN_ON" | "WARN_ON_ONCE", Some(a)) => work.push(a),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// True when `node` (an if's consequence) is, or directly holds, a return of an error:
/// `return -EINVAL;`, `{ pr_err(...); return ERR_PTR(-EINVAL); }`. Only one level is read, so
/// that nested ifs cost no more than their number.
fn returns_error(node: Node, source: &str) -> bool {
    let error = |n: Node| {
        n.kind_name() == "return_statement"
            && n.named_child(0).is_some_and(|v| {
                let value = syntax::squash(text(v, source));
                value.starts_with('-') || value.starts_with("(-") || value.starts_with("ERR_PTR")
            })
    };
    if node.kind_name() == "compound_statement" {
        let mut cursor = node.walk();
        let found = node.named_children(&mut cursor).any(error);
        found
    } else {
        error(node)
    }
}

/// The parameter names of a `function_declarator`, in order (empty strings for unnamed ones).
fn parameter_names(declarator: Node, source: &str) -> Vec<String> {
    declarator
        .field("parameters")
        .map(|list| {
            let mut cursor = list.walk();
            list.named_children(&mut cursor)
                .filter(|p| p.kind_name() == "parameter_declaration")
                .map(|p| {
                    p.field("declarator")
                        .and_then(declared_name)
                        .map_or(String::new(), |n| text(n, source).to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `function_declarator` of a definition or declaration (under any pointer declarators).
fn function_declarator(node: Node) -> Option<Node> {
    let mut declarator = node.field("declarator")?;
    loop {
        match declarator.kind_name() {
            "function_declarator" => return Some(declarator),
            "pointer_declarator" | "parenthesized_declarator" | "attributed_declarator" => {
                declarator = declarator.field("declarator")?
            }
            _ => return None,
        }
    }
}

/// The squashed arguments of every `name(...)` annotation in `header` (`name` ends with `(`).
pub fn annotation_arguments(header: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(at) = rest.find(name) {
        let after = &rest[at + name.len()..];
        let mut depth = 1usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push(syntax::squash(&after[..end]));
        rest = &after[end..];
    }
    out
}

/// Writes `lock`, in the callee's terms, in the caller's: each parameter name replaced by the
/// argument the call passes for it.
pub fn substitute(lock: &str, params: &[String], args: &[String]) -> String {
    let mut out = String::new();
    let mut rest = lock;
    while let Some(c) = rest.chars().next() {
        if !(c.is_alphanumeric() || c == '_') {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        rest = after;
        let arg = params
            .iter()
            .position(|p| !p.is_empty() && p == word)
            .and_then(|i| args.get(i));
        match arg {
            // `p->lock` with `p` given as `&object`: `object.lock`, as the caller names it.
            Some(arg) if arg.starts_with('&') && rest.starts_with("->") => {
                out.push_str(&arg[1..]);
                out.push('.');
                rest = &rest[2..];
            }
            Some(arg) => out.push_str(arg),
            None => out.push_str(word),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summaries(src: &str) -> LockSummaries {
        let parse = syntax::parse(src, None);
        summarize(parse.tree.root_node(), src)
    }

    #[test]
    fn a_release_of_a_parameter_lock_without_a_take_is_a_releaser() {
        let s = summaries(
            "static void foo_put(struct foo *f)\n{\n\tmutex_unlock(&f->lock);\n}\n\
             static void foo_cycle(struct foo *f)\n{\n\tmutex_lock(&f->lock);\n\tmutex_unlock(&f->lock);\n}\n\
             static void foo_local(struct bar *b)\n{\n\tstruct foo *g = bar_foo(b);\n\tmutex_unlock(&g->lock);\n}\n\
             static const struct foo_ops foo_ops = {\n\t.put = foo_put,\n\t.cycle = foo_cycle,\n\t.local = foo_local,\n};\n\
             static void foo_use(struct foo *f, struct bar *b)\n{\n\tfoo_put(f);\n\tfoo_cycle(f);\n\tbar_set(b, foo_local);\n}\n",
        );
        let names: Vec<_> = s.releasers.keys().cloned().collect();
        assert_eq!(names, ["foo_local", "foo_put"]);
        assert_eq!(s.releasers["foo_local"].locks, ["&g->lock"]);
        assert_eq!(s.releasers["foo_put"].locks, ["&f->lock"]);
        assert!(!s.releasers["foo_put"].annotated);
    }

    #[test]
    fn a_function_no_code_of_the_file_names_is_not_read() {
        // `foo_release` is named in a body (a release callback assigned), `foo_remove` only in
        // the operations table at file scope: no check of the file ever asks for it.
        let s = summaries(
            "static void foo_release(struct foo *f)\n{\n\tkfree(f);\n}\n\
             static void foo_remove(struct foo *f)\n{\n\tkfree(f);\n}\n\
             static const struct foo_ops foo_ops = {\n\t.remove = foo_remove,\n};\n\
             static int foo_probe(struct foo *f)\n{\n\tf->dev.release = foo_release;\n\treturn device_register(&f->dev);\n}\n",
        );
        assert!(s.takers.contains_key("foo_release"));
        assert!(!s.takers.contains_key("foo_remove"));
    }

    #[test]
    fn an_annotated_prototype_is_a_releaser() {
        let s = summaries("void bar_unlock(struct bar *b) __releases(&b->q.lock);\n");
        assert_eq!(s.releasers["bar_unlock"].locks, ["&b->q.lock"]);
        assert_eq!(s.releasers["bar_unlock"].params, ["b"]);
        assert!(s.releasers["bar_unlock"].annotated);
    }

    #[test]
    fn only_a_program_that_never_tests_an_allocation_is_exempt() {
        let tool = "static int *mk(int n)\n{\n\tint *p = malloc(n);\n\n\tp[0] = 1;\n\treturn p;\n}\nint main(int argc, char *argv[])\n{\n\treturn 0;\n}\n";
        assert!(!summaries(tool).tests_allocations);
        let careful = "static int *mk(int n)\n{\n\tint *p = malloc(n);\n\t/* checked */\n\tif (!p)\n\t\texit(1);\n\treturn p;\n}\nint main(void)\n{\n\treturn 0;\n}\n";
        assert!(summaries(careful).tests_allocations);
        let kernel = "static int *mk(int n)\n{\n\tint *p = kmalloc(n, GFP_KERNEL);\n\n\tp[0] = 1;\n\treturn p;\n}\n";
        assert!(summaries(kernel).tests_allocations);
    }

    #[test]
    fn substitution_replaces_whole_parameter_names_only() {
        let params = ["nn".to_owned(), "n".to_owned()];
        let args = ["priv->nn".to_owned(), "x".to_owned()];
        assert_eq!(
            substitute("&nn->queue.n_lock", &params, &args),
            "&priv->nn->queue.n_lock"
        );
    }
}
