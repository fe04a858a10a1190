//! The rule set. Each rule is a tree-sitter query (`queries/c/<rule-id>.scm`) that finds
//! candidates, plus a Rust check that decides, explains and proposes fixes.

use crate::analysis::syntax::Fields as _;
use std::sync::OnceLock;

use tree_sitter::{Node, Query, QueryCursor, StreamingIterator};

use super::finding::{ByteRange, Finding, Fix, Message, Origin, Severity};
use super::flow::{self, Fact, FlowInputs};
use super::{fix, syntax};

mod assignment_in_condition;
mod copy_user_return;
mod double_free;
mod leak_on_error;
mod lock_imbalance;
mod off_by_one;
mod pattern;
mod refcount_leak;
mod return_check;
mod size_overflow;
mod sizeof_pointer;
mod unchecked_alloc;
mod unsigned_compare;
mod use_after_free;

pub mod declarations;

/// A deterministic rule.
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// The rule author's estimate of how often a finding of this rule is a real bug; the
    /// evaluation harness (issue 4) replaces it with a measured figure.
    pub confidence: f32,
    /// One line for the README, SARIF and hovers.
    pub summary: &'static str,
    /// Why the pattern is a bug, for hovers.
    pub why: &'static str,
    /// How to fix it, for hovers.
    pub how_to_fix: &'static str,
    query: &'static str,
    check: fn(&Context) -> Vec<Candidate>,
}

/// A finding a rule proposes, with fixes that are not verified yet.
pub struct Candidate {
    pub range: ByteRange,
    /// The severity when it is not the rule's (a size product with no sign of a large operand
    /// is only a hint).
    pub severity: Option<Severity>,
    pub message: Message,
    pub related: Vec<super::finding::Related>,
    pub fixes: Vec<Fix>,
}

/// Every rule, in the order findings are listed.
pub static RULES: &[Rule] = &[
    unchecked_alloc::RULE,
    leak_on_error::RULE,
    refcount_leak::RULE,
    lock_imbalance::RULE,
    use_after_free::RULE,
    double_free::RULE,
    size_overflow::RULE,
    copy_user_return::RULE,
    return_check::RULE,
    unsigned_compare::RULE,
    off_by_one::RULE,
    assignment_in_condition::RULE,
    sizeof_pointer::RULE,
];

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The query source of a rule, as shipped in `queries/c/`.
pub fn query_source(rule: &Rule) -> &'static str {
    rule.query
}

/// Compiles a rule's query; an error names the rule and what the grammar rejected.
pub fn compile(rule: &Rule) -> Result<Query, String> {
    Query::new(&syntax::language(), rule.query)
        .map_err(|e| format!("query of rule {} does not compile: {e}", rule.id))
}

/// All rule queries as one set of patterns, so a function is walked once for every rule. The
/// patterns that only name the function a call calls (`calls`) are matched apart (see
/// `CallPattern`); the others are matched by `pattern::Pattern`, looked up by the kind of their
/// root, except any it cannot read, which the query engine runs (`query`; none today).
struct Combined {
    /// Each pattern with the index in `RULES` of the rule it belongs to (`usize::MAX` for the
    /// one that stands for every call pattern).
    patterns: Vec<(usize, pattern::Pattern)>,
    /// For each node kind id, the patterns whose root may be a node of that kind.
    by_kind: Vec<Vec<usize>>,
    /// The patterns left to the query engine, and the rule each of its patterns belongs to.
    query: Option<(Query, Vec<usize>)>,
    calls: CallPatterns,
}

/// The capture of the one pattern that stands for every call pattern in the combined query.
const ANY_CALL: &str = "aidiag.call";
const ANY_CALLEE: &str = "aidiag.callee";

fn combined() -> &'static Combined {
    static COMBINED: OnceLock<Combined> = OnceLock::new();
    COMBINED.get_or_init(|| {
        // Each rule's patterns are split from its text, not from its compiled query: compiling
        // every rule's query once more cost about as much as checking a hundred functions,
        // before the first diagnostic. A call pattern's shape admits no other predicate.
        let any_call: &'static str = Box::leak(
            format!("((call_expression function: (identifier) @{ANY_CALLEE}) @{ANY_CALL})")
                .into_boxed_str(),
        );
        let texts = RULES
            .iter()
            .enumerate()
            .flat_map(|(owner, rule)| {
                pattern_texts(rule.query)
                    .into_iter()
                    .map(move |t| (owner, t))
            })
            .chain(std::iter::once((usize::MAX, any_call)));
        Combined::build(texts)
    })
}

impl Combined {
    /// Sorts `texts` (each pattern's text with the index of the rule it belongs to, `usize::MAX`
    /// for the one that stands for every call pattern) into call patterns, patterns for
    /// `pattern::Pattern` and the rest, for the query engine.
    fn build(texts: impl Iterator<Item = (usize, &'static str)>) -> Combined {
        let language = syntax::language();
        let mut by_kind = vec![Vec::new(); language.node_kind_count()];
        let mut patterns = Vec::new();
        let mut left = String::new();
        let mut left_starts = Vec::new();
        let mut calls = Vec::new();
        for (owner, text) in texts {
            if let Some(call) = (owner != usize::MAX)
                .then(|| CallPattern::read(text, owner))
                .flatten()
            {
                calls.push(call);
                continue;
            }
            let read = pattern::Pattern::read(text, &language).filter(|p| {
                p.root_kinds()
                    .iter()
                    .all(|k| k.is_none_or(|k| language.node_kind_is_named(k)))
            });
            match read {
                Some(read) => {
                    for kind in read.root_kinds() {
                        match kind {
                            Some(kind) => by_kind[usize::from(kind)].push(patterns.len()),
                            None => by_kind.iter_mut().for_each(|p| p.push(patterns.len())),
                        }
                    }
                    patterns.push((owner, read));
                }
                None => {
                    left_starts.push((left.len(), owner));
                    left.push_str(text);
                    left.push('\n');
                }
            }
        }
        for kinds in &mut by_kind {
            kinds.dedup();
        }
        let query = (!left.is_empty()).then(|| {
            let query =
                Query::new(&language, &left).expect("the combined queries compile (tested)");
            // A pattern belongs to the rule whose text it starts in.
            let owners = (0..query.pattern_count())
                .map(|i| {
                    let start = query.start_byte_for_pattern(i);
                    let at = left_starts.partition_point(|&(s, _)| s <= start) - 1;
                    left_starts[at].1
                })
                .collect();
            (query, owners)
        });
        let names = regex::RegexSet::new(calls.iter().map(|c| c.name.as_str()))
            .expect("the call patterns' names are regular expressions (tested)");
        Combined {
            patterns,
            by_kind,
            query,
            calls: CallPatterns {
                patterns: calls,
                names,
            },
        }
    }
}

/// The text of each pattern of a query's `source`, as the query engine splits it: from the
/// parenthesis or bracket that opens the pattern at the top level to the next one (comments and
/// the text between included), skipping comments (`;` to the end of the line) and string
/// literals. A test holds it to `Query::start_byte_for_pattern` on every rule.
fn pattern_texts(source: &str) -> Vec<&str> {
    let bytes = source.as_bytes();
    let mut starts = Vec::new();
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' => {
                if depth == 0 {
                    starts.push(i);
                }
                depth += 1;
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &source[start..starts.get(n + 1).map_or(source.len(), |&e| e)])
        .collect()
}

/// A pattern that matches a call by the name of the function it calls, and may capture its
/// first or second argument:
/// `((call_expression function: (identifier) @fn arguments: (argument_list . (_) @arg)) @call
/// (#match? @fn "^(kfree|vfree)$"))`. Most of the rules' patterns have this shape, and the
/// query engine follows each of them into every call of a function and then tests the name
/// with a regular expression per pattern; here every call is matched once and its name tested
/// against all such patterns at once (`CallPatterns`), with the same captures.
struct CallPattern {
    owner: usize,
    /// The regular expression the name must match (an `#eq?` name made into one).
    name: String,
    callee: String,
    call: String,
    /// The index among the call's named arguments (comments count, as in the query) and the
    /// capture of the argument.
    argument: Option<(usize, String)>,
}

impl CallPattern {
    /// Reads a pattern of that shape; any other pattern gives `None`.
    fn read(text: &str, owner: usize) -> Option<CallPattern> {
        static SHAPE: OnceLock<regex::Regex> = OnceLock::new();
        let shape = SHAPE.get_or_init(|| {
            regex::Regex::new(concat!(
                r#"^\(\(call_expression function: \(identifier\) @([\w.]+)"#,
                r#"(?: arguments: \(argument_list \. \(_\) (\. \(_\) )?@([\w.]+)\))?\) "#,
                r#"@([\w.]+) \(#(match|eq)\? @([\w.]+) "([^"\\]*)"\)\)$"#
            ))
            .expect("the shape compiles")
        });
        let code: Vec<&str> = text
            .lines()
            .map(|l| l.split(';').next().unwrap_or(""))
            .flat_map(str::split_whitespace)
            .collect();
        let code = code.join(" ");
        let m = shape.captures(&code)?;
        if m[1] != m[6] {
            return None;
        }
        let name = match &m[5] {
            "eq" => format!("^{}$", regex::escape(&m[7])),
            _ => m[7].to_owned(),
        };
        Some(CallPattern {
            owner,
            name,
            callee: m[1].to_owned(),
            call: m[4].to_owned(),
            argument: m
                .get(3)
                .map(|arg| (usize::from(m.get(2).is_some()), arg.as_str().to_owned())),
        })
    }
}

/// The call patterns of every rule, and their names as one set of regular expressions.
struct CallPatterns {
    patterns: Vec<CallPattern>,
    names: regex::RegexSet,
}

impl CallPatterns {
    /// The matches of every call pattern on one call, each added to its rule's.
    fn add<'t>(
        &'static self,
        call: Node<'t>,
        callee: Node<'t>,
        source: &str,
        out: &mut [Vec<Match<'t>>],
    ) {
        let name = syntax::text(callee, source);
        for i in self.names.matches(name).iter() {
            let pattern = &self.patterns[i];
            let mut captures = vec![
                (pattern.callee.as_str(), callee),
                (pattern.call.as_str(), call),
            ];
            if let Some((index, capture)) = &pattern.argument {
                let Some(argument) = call
                    .field("arguments")
                    .and_then(|list| list.named_child(*index as u32))
                else {
                    continue;
                };
                captures.push((capture.as_str(), argument));
            }
            out[pattern.owner].push(Match { captures });
        }
    }
}

/// A version of the rule set: findings cached under another version are not reused.
pub fn ruleset_version() -> u64 {
    static VERSION: OnceLock<u64> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let mut all = String::from(env!("CARGO_PKG_VERSION"));
        for rule in RULES {
            all.push_str(rule.id);
            all.push_str(rule.query);
        }
        xxhash_rust::xxh3::xxh3_64(all.as_bytes())
    })
}

/// One match of a rule's query, by capture name.
pub struct Match<'t> {
    captures: Vec<(&'static str, Node<'t>)>,
}

impl<'t> Match<'t> {
    pub fn get(&self, name: &str) -> Option<Node<'t>> {
        self.captures.iter().find(|(n, _)| *n == name).map(|c| c.1)
    }
}

/// What a rule's check sees: one function, the document text and its query's matches.
pub struct Context<'t> {
    pub function: Node<'t>,
    pub source: &'t str,
    pub matches: Vec<Match<'t>>,
    /// The function's declarations for the path walk, read by the first rule that walks it.
    pub declared: std::rc::Rc<std::cell::OnceCell<flow::Declared>>,
    /// The function's named nodes in source order (`syntax::named_nodes`).
    pub nodes: std::rc::Rc<[(Node<'t>, usize)]>,
}

impl<'t> Context<'t> {
    pub fn text(&self, node: Node) -> &'t str {
        syntax::text(node, self.source)
    }

    /// The inputs of the path walk: calls captured as `@alloc`, `@free` (with `@free.arg`),
    /// `@borrow`, `@deref`, `@acquire` and `@release` (with `@lock`, absent for argument-less
    /// locks), `@acquire.if_zero` / `@acquire.if_nonzero` (with `@lock`) for acquisitions
    /// whose result says whether the lock was taken, and `@resource.take` (can fail),
    /// `@resource.take_always` and `@resource.put` for resources other than memory.
    pub fn flow_inputs(&self) -> FlowInputs<'t> {
        let mut inputs = FlowInputs::default();
        for m in &self.matches {
            if let Some(call) = m.get("alloc") {
                inputs.allocs.insert(call.id());
            }
            if let (Some(call), Some(arg)) = (m.get("free"), m.get("free.arg")) {
                inputs.frees.insert(call.id(), arg);
            }
            if let Some(call) = m.get("borrow") {
                inputs.borrows.insert(call.id());
            }
            if let Some(call) = m.get("deref") {
                inputs.derefs.insert(call.id());
            }
            if let Some(call) = m.get("acquire") {
                inputs.acquires.insert(call.id(), m.get("lock"));
            }
            if let Some(call) = m.get("release") {
                inputs.releases.insert(call.id(), m.get("lock"));
            }
            if let (Some(call), Some(arg)) = (m.get("acquire.if_zero"), m.get("lock")) {
                inputs.conditional_acquires.insert(call.id(), (arg, false));
            }
            if let (Some(call), Some(arg)) = (m.get("acquire.if_nonzero"), m.get("lock")) {
                inputs.conditional_acquires.insert(call.id(), (arg, true));
            }
            if let Some(call) = m.get("resource.take") {
                inputs.takes.insert(call.id(), true);
            }
            if let Some(call) = m.get("resource.take_always") {
                inputs.takes.insert(call.id(), false);
            }
            if let Some(call) = m.get("resource.put") {
                inputs.puts.insert(call.id());
            }
            if let Some(call) = m.get("resource.lookup") {
                inputs.lookups.insert(call.id());
            }
        }
        inputs
    }

    /// Runs the path walk with this rule's inputs. A function without any allocation, free or
    /// lock call of this rule cannot produce a fact, so it is not walked.
    pub fn facts(&self) -> Vec<Fact> {
        self.walk(false, |_| true)
    }

    /// The path walk, where `may_find` says from the walk's inputs that the walk could find
    /// what the rule asks for (a rule's own test that no path can hold what it looks for, made
    /// without the walk).
    pub fn facts_if(&self, may_find: impl FnOnce(&FlowInputs<'t>) -> bool) -> Vec<Fact> {
        self.walk(false, may_find)
    }

    /// The path walk with `put_device(&p->dev)` as a free of `p` where the function installed
    /// a release callback that frees it (see `add_consumer_calls`). Only the double-free rule
    /// asks: a second free after the last reference is dropped is the bug whatever else the
    /// path holds, while a use after it depends on flags the walk does not follow
    /// (`if (registered) foo_unregister(p)`). `may_find` as in `facts_if`.
    pub fn facts_after_release_puts_if(
        &self,
        may_find: impl FnOnce(&FlowInputs<'t>) -> bool,
    ) -> Vec<Fact> {
        self.walk(true, may_find)
    }

    fn walk(
        &self,
        release_puts: bool,
        may_find: impl FnOnce(&FlowInputs<'t>) -> bool,
    ) -> Vec<Fact> {
        let mut inputs = self.flow_inputs();
        if !inputs.frees.is_empty() {
            self.add_consumer_calls(&mut inputs, release_puts);
        }
        if inputs.allocs.is_empty()
            && inputs.frees.is_empty()
            && inputs.acquires.is_empty()
            && inputs.conditional_acquires.is_empty()
            && inputs.takes.is_empty()
            && inputs.lookups.is_empty()
        {
            return Vec::new();
        }
        if !may_find(&inputs) {
            return Vec::new();
        }
        let body = self.function.field("body");
        let nodes = body.map_or(&[][..], |body| syntax::subtree(&self.nodes, body));
        let declared = self
            .declared
            .get_or_init(|| flow::Declared::read(nodes, self.source));
        flow::analyze(self.function, self.source, &inputs, declared, nodes)
    }

    /// Calls to functions of the file that free an argument on every path
    /// (`summary::LockSummaries::consumers`), as frees of that argument: a rule that follows
    /// frees sees the caller's object gone after `msg_send(c, msg, len)`.
    ///
    /// Also `put_device(&p->dev)` as a free of `p` once the function has installed a release
    /// callback of the file that frees the object it is given (`p->dev.release = foo_release`,
    /// or `foo_device_initialize(&p->dev, foo_release)`): the function's own code says that
    /// dropping the last reference frees `p`.
    fn add_consumer_calls(&self, inputs: &mut FlowInputs<'t>, release_puts: bool) {
        let summaries = super::summary::for_file(self.function, self.source);
        if summaries.consumers.is_empty() && (!release_puts || summaries.takers.is_empty()) {
            return;
        }
        // A release callback frees the object it is given (also through `container_of()`),
        // on some path at least; one that stores it somewhere is no release.
        let frees_its_argument = |name: &str| {
            let first = |m: &std::collections::BTreeMap<String, Vec<usize>>| {
                m.get(name).is_some_and(|at| at.contains(&0))
            };
            first(&summaries.takers) && !first(&summaries.storers)
        };
        let mut released: Vec<&str> = Vec::new();
        let mut puts: Vec<(Node<'t>, Node<'t>)> = Vec::new();
        let mut gotten: Vec<&str> = Vec::new();
        let mut stack = vec![self.function];
        while let Some(node) = stack.pop() {
            if node.kind_name() == "call_expression" {
                let name = syntax::callee_name(node, self.source);
                let consumed = name.and_then(|name| summaries.consumers.get(name));
                // A call is one free of one argument here; a helper that frees several
                // (`foo_free_all(dev, bufs, addrs)`) stays a taker of each.
                if let Some(&[at]) = consumed.map(Vec::as_slice) {
                    if let Some(arg) = syntax::call_arguments(node).get(at) {
                        inputs.frees.entry(node.id()).or_insert(*arg);
                    }
                }
                let args = syntax::call_arguments(node);
                if !release_puts {
                    // Only the consumers above.
                } else if name == Some("put_device") {
                    if let [arg] = args.as_slice() {
                        puts.push((node, *arg));
                    }
                } else if name == Some("get_device") {
                    // Another reference taken here: a put may not be the last.
                    gotten.extend(
                        args.iter()
                            .filter_map(|a| embedded(*a, self.source).map(|o| self.text(o))),
                    );
                } else if args
                    .iter()
                    .any(|a| a.kind_name() == "identifier" && frees_its_argument(self.text(*a)))
                {
                    released.extend(
                        args.iter()
                            .filter_map(|a| embedded(*a, self.source).map(|o| self.text(o))),
                    );
                }
            } else if release_puts && node.kind_name() == "assignment_expression" {
                let (left, right) = (node.field("left"), node.field("right"));
                if let (Some(left), Some(right)) = (left, right) {
                    if left.kind_name() == "field_expression"
                        && left
                            .field("field")
                            .is_some_and(|f| self.text(f) == "release")
                        && right.kind_name() == "identifier"
                        && frees_its_argument(self.text(right))
                    {
                        if let Some(object) = left.field("argument") {
                            released.push(self.text(object));
                        }
                    }
                }
            }
            let mut cursor = node.walk();
            stack.extend(node.named_children(&mut cursor));
        }
        for (call, arg) in puts {
            let Some(operand) = embedded(arg, self.source) else {
                continue;
            };
            let text = self.text(operand);
            // `&p->dev`: the free is of `p`.
            let object = operand.field("argument");
            if let Some(object) =
                object.filter(|_| released.contains(&text) && !gotten.contains(&text))
            {
                inputs.frees.entry(call.id()).or_insert(object);
            }
        }
    }

    /// The node at `range`: the deepest node that spans it. Facts and candidates carry the
    /// ranges of whole nodes, so this is the node they were made from.
    pub fn node_at(&self, range: ByteRange) -> Option<Node<'t>> {
        self.function
            .descendant_for_byte_range(range.start, range.end)
    }

    /// The statement that contains `node` and sits directly in a block, an `if` or a label.
    pub fn statement_of(&self, node: Node<'t>) -> Option<Node<'t>> {
        let mut node = node;
        loop {
            let parent = node.parent()?;
            if matches!(
                parent.kind_name(),
                "compound_statement"
                    | "if_statement"
                    | "else_clause"
                    | "labeled_statement"
                    | "case_statement"
            ) && node.kind_name() != "parenthesized_expression"
            {
                return Some(node);
            }
            node = parent;
        }
    }
}

/// How a check runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Compute and verify fixes (slower; the server asks only for code actions).
    pub fixes: bool,
}

/// The object `&p->dev` points into (`p->dev`), for an argument of that shape.
fn embedded<'t>(arg: Node<'t>, source: &str) -> Option<Node<'t>> {
    let operand = arg
        .field("argument")
        .filter(|_| arg.kind_name() == "pointer_expression")
        .filter(|_| syntax::text(arg, source).starts_with('&'))?;
    (operand.kind_name() == "field_expression"
        && operand
            .field("argument")
            .is_some_and(|o| o.kind_name() == "identifier"))
    .then_some(operand)
}

/// Runs every rule's patterns on one function, whose named nodes are `nodes`
/// (`syntax::named_nodes`); the matches of each rule, by rule index.
fn run_queries<'t>(
    function: Node<'t>,
    nodes: &[(Node<'t>, usize)],
    source: &'t str,
) -> Vec<Vec<Match<'t>>> {
    run_combined(combined(), function, nodes, source)
}

/// `run_queries` with the patterns of `combined`.
fn run_combined<'t>(
    combined: &'static Combined,
    function: Node<'t>,
    nodes: &[(Node<'t>, usize)],
    source: &'t str,
) -> Vec<Vec<Match<'t>>> {
    let mut out: Vec<Vec<Match>> = RULES.iter().map(|_| Vec::new()).collect();
    let kids = pattern::Kids::new(function);
    for &(node, _) in nodes {
        let Some(patterns) = combined.by_kind.get(usize::from(node.kind_id())) else {
            continue;
        };
        kids.clear();
        for &i in patterns {
            let (owner, pattern) = &combined.patterns[i];
            pattern.matches(node, source, &kids, &mut |captures| {
                if *owner != usize::MAX {
                    out[*owner].push(Match {
                        captures: captures.to_vec(),
                    });
                    return;
                }
                let capture = |name| captures.iter().find(|c| c.0 == name).map(|c| c.1);
                if let (Some(call), Some(callee)) = (capture(ANY_CALL), capture(ANY_CALLEE)) {
                    combined.calls.add(call, callee, source, &mut out);
                }
            });
        }
    }
    if let Some((query, owners)) = &combined.query {
        let names = query.capture_names();
        let mut cursor = QueryCursor::new();
        let mut matches = cursor.matches(query, function, source.as_bytes());
        while let Some(m) = matches.next() {
            out[owners[m.pattern_index]].push(Match {
                captures: m
                    .captures()
                    .iter()
                    .map(|c| (names[c.index as usize], c.node))
                    .collect(),
            });
        }
    }
    out
}

/// The deepest syntax tree a function may have to be checked. The rules and the path walk
/// recurse on the tree; real functions stay far below this (the deepest of the 554,908 functions
/// of Linux 6.12's drivers, fs, sound and net nests 97), and a bound keeps a hostile input from
/// exhausting a thread's stack or the query engine's time.
pub const MAX_DEPTH: usize = 500;

/// The stack the threads that check code get (the CLI's workers, the server's runtime): enough
/// for a function `MAX_DEPTH` deep in an unoptimized build too, where frames are several times
/// larger than in a release build.
pub const ANALYSIS_STACK_BYTES: usize = 16 << 20;

/// How many fixes of one function may be verified: each verification checks the function again,
/// so the work is bounded by the size of the function, about 300 KB of code checked again
/// (64 fixes of a 5 KB function, 6 of a 50 KB one), and at least one.
fn verification_budget(function_bytes: usize) -> usize {
    (300_000 / function_bytes.max(1)).clamp(1, 64)
}

/// The rule id of the note that says a function was not checked.
pub const NOT_CHECKED: &str = "not-checked";

/// Runs every rule on one function definition.
pub fn check_function(function: Node, source: &str, options: CheckOptions) -> Vec<Finding> {
    check_listed_function(
        function,
        syntax::named_nodes(function).into(),
        source,
        options,
    )
}

/// `check_function`, given the function's named nodes (`syntax::named_nodes`).
pub fn check_listed_function<'t>(
    function: Node<'t>,
    nodes: std::rc::Rc<[(Node<'t>, usize)]>,
    source: &'t str,
    options: CheckOptions,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if syntax::never_compiled(function, |c| syntax::text(c, source).trim() == "0") {
        return findings;
    }
    if syntax::deeper_than(function, MAX_DEPTH) {
        let name = crate::analysis::functions::function_name(function).unwrap_or(function);
        findings.push(Finding {
            rule: NOT_CHECKED,
            severity: Severity::Information,
            origin: Origin::Rule,
            confidence: 1.0,
            range: ByteRange::of(name),
            message: Message::new().text(format!(
                "`{}` was not checked: its code nests more than {MAX_DEPTH} levels deep",
                syntax::text(name, source)
            )),
            related: Vec::new(),
            fixes: Vec::new(),
        });
        return findings;
    }
    // Read the file's type definitions only when fixes are asked for and there is a finding to
    // fix: most functions have none, and the definitions are read from the whole file.
    let verifier = std::cell::OnceCell::new();
    let mut verifications = verification_budget(function.byte_range().len());
    let test_code = is_kunit_test(function, source);
    let declared = std::rc::Rc::default();
    for (rule, matches) in RULES.iter().zip(run_queries(function, &nodes, source)) {
        if matches.is_empty() {
            continue;
        }
        let context = Context {
            function,
            source,
            matches,
            declared: std::rc::Rc::clone(&declared),
            nodes: std::rc::Rc::clone(&nodes),
        };
        let mut seen: Vec<(ByteRange, Message)> = Vec::new();
        for candidate in (rule.check)(&context) {
            let key = (candidate.range, candidate.message.clone());
            if is_suppressed(source, candidate.range, rule.id) || seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let mut finding = Finding {
                rule: rule.id,
                severity: match candidate.severity.unwrap_or(rule.severity) {
                    // A KUnit test's own setup is not kernel code that ships: a hint at most.
                    Severity::Warning | Severity::Error if test_code => Severity::Hint,
                    s => s,
                },
                origin: Origin::Rule,
                confidence: rule.confidence,
                range: candidate.range,
                message: candidate.message,
                related: candidate.related,
                fixes: Vec::new(),
            };
            if options.fixes {
                let verifier = verifier.get_or_init(|| fix::Verifier::new(function, source));
                let proposals: Vec<Fix> = candidate
                    .fixes
                    .into_iter()
                    .chain(std::iter::once(suppression(source, &finding)))
                    .collect();
                // Each verification checks the whole function again: past the budget, findings
                // are reported without fixes rather than late.
                if proposals.len() <= verifications {
                    verifications -= proposals.len();
                    finding.fixes = proposals
                        .into_iter()
                        .filter(|f| verifier.verify(&finding, f))
                        .collect();
                }
            }
            findings.push(finding);
        }
    }
    findings.sort_by_key(|f| (f.range.start, f.range.end));
    findings
}

/// The comment that silences a rule on the line below it (or on its own line):
/// `/* aidiag-ignore: rule-id */`; several ids may be listed, separated by commas.
pub const SUPPRESS_MARKER: &str = "aidiag-ignore:";

fn is_suppressed(source: &str, range: ByteRange, rule: &str) -> bool {
    let start = syntax::line_start(source, range.start);
    let previous = syntax::line_start(source, start.saturating_sub(1));
    let line_end = source[start..]
        .find(['\n', '\r'])
        .map_or(source.len(), |i| start + i);
    let lines = &source[previous.min(start)..line_end];
    lines.lines().any(|line| {
        let Some(at) = line.find(SUPPRESS_MARKER) else {
            return false;
        };
        let comment = line[..at].contains("/*") || line[..at].contains("//");
        let ids = line[at + SUPPRESS_MARKER.len()..]
            .split("*/")
            .next()
            .unwrap_or("");
        comment && ids.split([',', ' ']).any(|id| id.trim() == rule)
    })
}

/// The "suppress this finding here" fix: a comment on its own line above the finding.
fn suppression(source: &str, finding: &Finding) -> Fix {
    let start = syntax::line_start(source, finding.range.start);
    let indent = syntax::indentation(source, finding.range.start);
    Fix {
        title: format!("Suppress {} here", finding.rule),
        edits: vec![super::finding::Edit {
            range: ByteRange::new(start, start),
            text: format!(
                "{indent}/* {SUPPRESS_MARKER} {} */{}",
                finding.rule,
                syntax::newline(source)
            ),
        }],
        preferred: false,
    }
}

/// Builds a fix that inserts `lines` (already indented) before `statement`.
///
/// A statement that is the whole body of an `if` or `else` gets braces, so the inserted code runs
/// only on that branch.
pub fn insert_before(
    source: &str,
    statement: Node,
    lines: &[String],
    title: String,
) -> Option<Fix> {
    let nl = syntax::newline(source);
    let parent = statement.parent()?;
    let edit = match parent.kind_name() {
        "compound_statement" | "labeled_statement" | "case_statement" => {
            let start = syntax::line_start(source, statement.start_byte());
            if !source[start..statement.start_byte()].trim().is_empty() {
                return None;
            }
            let mut text = String::new();
            for line in lines {
                text.push_str(syntax::indentation(source, statement.start_byte()));
                text.push_str(line);
                text.push_str(nl);
            }
            super::finding::Edit {
                range: ByteRange::new(start, start),
                text,
            }
        }
        "if_statement" | "else_clause" => {
            let mut lines = lines.to_vec();
            lines.push(syntax::text(statement, source).to_owned());
            braced_branch(source, statement, &lines)?
        }
        _ => return None,
    };
    Some(Fix {
        title,
        edits: vec![edit],
        preferred: true,
    })
}

/// Replaces `statement`, the whole body of an `if` or `else`, by a block of `lines` in kernel
/// style (`if (x) {` on the condition's line, the closing brace under the `if`).
pub fn braced_branch(
    source: &str,
    statement: Node,
    lines: &[String],
) -> Option<super::finding::Edit> {
    let parent = statement.parent()?;
    let (head, owner) = match parent.kind_name() {
        "if_statement" => (parent.field("condition")?, parent),
        "else_clause" => (parent.child(0)?, parent.parent()?),
        _ => return None,
    };
    let nl = syntax::newline(source);
    let indent = syntax::indentation(source, owner.start_byte());
    let inner = format!("{indent}{}", syntax::indent_unit(indent));
    let body: String = lines.iter().map(|l| format!("{nl}{inner}{l}")).collect();
    Some(super::finding::Edit {
        range: ByteRange::new(head.end_byte(), statement.end_byte()),
        text: format!(" {{{body}{nl}{indent}}}"),
    })
}

/// Builds a fix that inserts `lines` on the lines after `statement`, with its indentation. The
/// statement must sit in a block and end its line.
pub fn insert_after(source: &str, statement: Node, lines: &[String], title: String) -> Option<Fix> {
    if statement.parent()?.kind_name() != "compound_statement" {
        return None;
    }
    let end = statement.end_byte();
    let rest = &source[end..];
    let eol = rest.find('\n')?;
    if !rest[..eol].trim().is_empty() {
        return None;
    }
    let indent = syntax::indentation(source, statement.start_byte());
    let nl = syntax::newline(source);
    let text: String = lines.iter().map(|l| format!("{indent}{l}{nl}")).collect();
    let at = end + eol + 1;
    Some(Fix {
        title,
        edits: vec![super::finding::Edit {
            range: ByteRange::new(at, at),
            text,
        }],
        preferred: true,
    })
}

/// A one-edit fix that replaces `range` by `text`.
pub fn replace(range: ByteRange, text: impl Into<String>, title: impl Into<String>) -> Fix {
    Fix {
        title: title.into(),
        edits: vec![super::finding::Edit {
            range,
            text: text.into(),
        }],
        preferred: true,
    }
}

/// A resource a path still holds at an error return where another path of the function
/// releases it: the candidate at the exit, with where it was taken and released (and the
/// ladder) as evidence, and the fix that runs `release` (a statement) before leaving.
pub fn held_at_error_return(
    ctx: &Context,
    exit: &flow::Exit,
    [taken, released]: [super::finding::Related; 2],
    release: String,
    fix_title: String,
    prefix: Message,
) -> Candidate {
    let related = [taken, released]
        .into_iter()
        .chain(exit_related(exit, "the error return"))
        .collect();
    let fixes = ctx
        .node_at(exit.decision())
        .and_then(|statement| insert_before(ctx.source, statement, &[release], fix_title))
        .into_iter()
        .collect();
    Candidate {
        severity: None,
        range: exit.decision(),
        message: exit_message(ctx.source, prefix, exit, "error return"),
        related,
        fixes,
    }
}

/// Finishes a message about a path that leaves the function: "on the error return at line 19",
/// or "when `goto out` at line 19 leads to the error return at line 30".
pub fn exit_message(source: &str, prefix: Message, exit: &flow::Exit, what: &str) -> Message {
    let end_of_function = source.get(exit.ret.start..exit.ret.end) == Some("}");
    let target = |m: Message| {
        if end_of_function {
            m.text("the end of the function at ")
                .line_of(exit.ret.start)
        } else {
            m.text(format!("the {what} at ")).line_of(exit.ret.start)
        }
    };
    match &exit.goto {
        None if end_of_function => target(prefix.text("at ")),
        None => target(prefix.text("on ")),
        Some((at, label)) => target(
            prefix
                .text(format!("when `goto {label}` at "))
                .line_of(at.start)
                .text(" leads to "),
        ),
    }
}

/// The evidence for a path that left through a `goto`: where it finally returned.
pub fn exit_related(exit: &flow::Exit, what: &str) -> Option<super::finding::Related> {
    exit.goto
        .as_ref()
        .map(|(_, label)| super::finding::Related {
            range: exit.ret,
            message: Message::new().text(format!("{what} reached from `goto {label}`")),
        })
}

/// True when the function takes a `struct kunit *` (a KUnit test case or its setup).
fn is_kunit_test(function: Node, source: &str) -> bool {
    let header_end = function
        .field("body")
        .map_or(function.end_byte(), |b| b.start_byte());
    source
        .get(function.start_byte()..header_end)
        .is_some_and(|h| syntax::squash(h).contains("structkunit*"))
}

/// True when a string literal in the function announces a deliberate misuse of freed memory
/// ("Attempting bad read from freed memory", "Attempting double slab free"): code that tests
/// the kernel's detection does it on purpose.
pub fn announces_misuse_of_freed_memory(function: Node, source: &str) -> bool {
    const WORDS: [&str; 5] = ["attempt", "bad ", "double", "after free", "use-after"];
    // Most functions name none of the words anywhere: no need to walk their tree.
    let code = source
        .get(function.byte_range())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !WORDS.iter().any(|w| code.contains(w)) {
        return false;
    }
    syntax::any_node(function, |node| {
        if node.kind_name() != "string_literal" {
            return None;
        }
        let said = syntax::text(node, source).to_lowercase();
        Some(said.contains("free") && WORDS.iter().any(|w| said.contains(w)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_compiles_against_the_grammar() {
        for rule in RULES {
            compile(rule).unwrap();
        }
        // Every pattern is matched without the query engine (its walk is the slow part).
        assert!(combined().query.is_none());
        assert!(combined().patterns.len() >= 20);
    }

    /// The matches of one rule's own query, run by the query engine alone, as (capture, range)
    /// sets, one per match.
    fn engine_matches(
        query: &Query,
        function: Node,
        source: &str,
    ) -> Vec<Vec<(String, ByteRange)>> {
        let mut cursor = QueryCursor::new();
        let mut matches = cursor.matches(query, function, source.as_bytes());
        let mut out = Vec::new();
        while let Some(m) = matches.next() {
            let mut captures: Vec<(String, ByteRange)> = m
                .captures()
                .iter()
                .map(|c| {
                    let name = query.capture_names()[c.index as usize].to_owned();
                    (name, ByteRange::of(c.node))
                })
                .collect();
            captures.sort();
            out.push(captures);
        }
        out.sort();
        out
    }

    /// Matches as `engine_matches` gives them.
    fn sorted(matches: &[Match]) -> Vec<Vec<(String, ByteRange)>> {
        let mut out: Vec<Vec<(String, ByteRange)>> = matches
            .iter()
            .map(|m| {
                let mut c: Vec<(String, ByteRange)> = m
                    .captures
                    .iter()
                    .map(|(n, node)| ((*n).to_owned(), ByteRange::of(*node)))
                    .collect();
                c.sort();
                c
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn patterns_are_split_where_the_query_engine_splits_them() {
        for rule in RULES {
            let query = compile(rule).unwrap();
            let starts: Vec<usize> = (0..query.pattern_count())
                .map(|i| query.start_byte_for_pattern(i))
                .collect();
            let texts = pattern_texts(rule.query);
            let ours: Vec<usize> = texts
                .iter()
                .map(|t| t.as_ptr() as usize - rule.query.as_ptr() as usize)
                .collect();
            assert_eq!(ours, starts, "rule {}", rule.id);
            assert_eq!(
                texts.concat().len(),
                rule.query.len() - starts[0],
                "rule {}",
                rule.id
            );
        }
    }

    #[test]
    fn call_patterns_match_what_the_query_engine_matches() {
        // Every rule's matches, through the combined query and the call patterns split out of
        // it, are those of the rule's own query run alone: on every fixture, and on calls whose
        // first argument is a comment or that have too few arguments.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
        let mut texts = vec![
            "void f(void *p, struct s *c)\n{\n\tkfree(/* old */ p);\n\tkmem_cache_free(c);\n\tkfree();\n\tmutex_lock(&c->lock);\n\tkmem_cache_free(c, /* x */ p);\n\tof_node_put(p);\n\tpr_err(\"x\");\n}\n"
                .to_owned(),
        ];
        for dir in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                texts.push(std::fs::read_to_string(file.unwrap().path()).unwrap());
            }
        }
        let split = combined().calls.patterns.len();
        assert!(split >= 20, "only {split} call patterns were split out");
        let queries: Vec<Query> = RULES.iter().map(|r| compile(r).unwrap()).collect();
        let mut compared = 0;
        for text in &texts {
            let parse = syntax::parse(text, None);
            for function in crate::analysis::functions::function_nodes(&parse.tree) {
                let all = run_queries(function, &syntax::named_nodes(function), text);
                for ((rule, query), matches) in RULES.iter().zip(&queries).zip(all) {
                    let ours = sorted(&matches);
                    let theirs = engine_matches(query, function, text);
                    compared += theirs.len();
                    assert_eq!(ours, theirs, "rule {} on\n{text}", rule.id);
                }
            }
        }
        assert!(compared > 1000, "only {compared} matches compared");
    }

    #[test]
    fn a_pattern_the_matcher_cannot_read_is_left_to_the_query_engine() {
        let texts = [
            "((call_expression function: (identifier) @fn arguments: (argument_list (_)* @args)) @call (#eq? @fn \"g\"))",
            "((binary_expression left: (_) @value operator: \"<\" right: (number_literal) @zero) @compare (#eq? @zero \"0\"))",
        ];
        let combined: &'static Combined =
            Box::leak(Box::new(Combined::build(texts.iter().map(|t| (0, *t)))));
        assert_eq!(combined.patterns.len(), 1);
        assert!(combined.query.is_some());
        let source = "void f(int a)\n{\n\tg(a, 1, 2);\n\tif (a < 0)\n\t\tg();\n\th(a);\n}\n";
        let parse = syntax::parse(source, None);
        let function = crate::analysis::functions::function_nodes(&parse.tree)[0];
        let nodes = syntax::named_nodes(function);
        let ours = sorted(&run_combined(combined, function, &nodes, source).swap_remove(0));
        let query = Query::new(&syntax::language(), &texts.join("\n")).unwrap();
        let theirs = engine_matches(&query, function, source);
        // Three for `g(a, 1, 2)` (the engine gives one per argument), one for `g()`, one for `a < 0`.
        assert_eq!(theirs.len(), 5, "{theirs:?}");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn every_query_file_belongs_to_a_rule_and_matches_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/c");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let rule = rule(&id).unwrap_or_else(|| panic!("{} has no rule", path.display()));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), rule.query);
            files += 1;
        }
        assert_eq!(files, RULES.len());
    }

    #[test]
    fn suppression_comment_silences_only_its_rule() {
        let src = "int f(void)\n{\n\t/* aidiag-ignore: leak-on-error */\n\treturn 0;\n}\n";
        let at = src.find("return").unwrap();
        let range = ByteRange::new(at, at + 6);
        assert!(is_suppressed(src, range, "leak-on-error"));
        assert!(!is_suppressed(src, range, "double-free"));
    }

    #[test]
    fn rules_still_work_in_functions_with_error_nodes() {
        // `scoped_guard(...) { ... }` is a macro the grammar cannot read: a call missing its `;`
        // followed by a block. The leak inside the block is still found.
        let src = "static int foo_update(struct foo *foo)\n{\n\tchar *buf = kmalloc(64, GFP_KERNEL);\n\n\tif (!buf)\n\t\treturn -ENOMEM;\n\tscoped_guard(mutex, &foo->lock) {\n\t\tif (foo->dead)\n\t\t\treturn -ENODEV;\n\t\tfoo->gen++;\n\t}\n\tkfree(buf);\n\treturn 0;\n}\n";
        let parse = syntax::parse(src, None);
        assert!(parse.errors > 0, "the macro leaves an error node");
        let findings = crate::analysis::check_text(src, CheckOptions::default());
        let rules: Vec<_> = findings
            .iter()
            .map(|f| (f.rule, &src[f.range.start..f.range.end]))
            .collect();
        assert_eq!(rules, [("leak-on-error", "return -ENODEV;")]);
    }

    /// What `test` says of the context rule `id` checks the first function of `src` in.
    fn with_context(id: &str, src: &str, test: impl FnOnce(&Context) -> bool) -> bool {
        let parse = syntax::parse(src, None);
        let function = crate::analysis::functions::function_nodes(&parse.tree)[0];
        let index = RULES.iter().position(|r| r.id == id).unwrap();
        let nodes: std::rc::Rc<[(Node, usize)]> = syntax::named_nodes(function).into();
        let matches = run_queries(function, &nodes, src).swap_remove(index);
        test(&Context {
            function,
            source: src,
            matches,
            declared: std::rc::Rc::default(),
            nodes,
        })
    }

    fn paired(body: &str) -> bool {
        let src = format!("static int foo(struct foo *p, int x)\n{{\n{body}\n}}\n");
        with_context("lock-imbalance", &src, |ctx| {
            flow::locks_paired_in_line(&ctx.flow_inputs(), &src)
        })
    }

    #[test]
    fn locks_released_further_down_the_same_block_need_no_walk() {
        assert!(paired(
            "spin_lock(&p->lock);\np->n++;\nspin_unlock(&p->lock);\nreturn 0;"
        ));
        assert!(paired(
            "if (x) {\nspin_lock(&p->a);\nspin_lock(&p->b);\nfoo_kick(p);\nspin_unlock(&p->b);\nspin_unlock(&p->a);\n}\nreturn x;"
        ));
        // Something between may leave or be jumped to, or the pair is not in one block.
        assert!(!paired(
            "mutex_lock(&p->m);\nif (p->dead)\nreturn -ENODEV;\nmutex_unlock(&p->m);\nreturn 0;"
        ));
        assert!(!paired(
            "mutex_lock(&p->m);\nif (p->dead)\ngoto out;\nmutex_unlock(&p->m);\nout:\nreturn 0;"
        ));
        assert!(!paired(
            "spin_lock(&p->l);\nagain:\np->n++;\nspin_unlock(&p->l);\nreturn 0;"
        ));
        assert!(!paired("while (x--) {\nspin_lock(&p->l);\nif (p->n)\nbreak;\nspin_unlock(&p->l);\n}\nreturn 0;"));
        assert!(!paired("mutex_lock(&p->m);\nif (x) {\nmutex_unlock(&p->m);\nreturn 1;\n}\nmutex_unlock(&p->m);\nreturn 0;"));
        assert!(!paired(
            "spin_unlock(&p->l);\nfoo_wait(p);\nspin_lock(&p->l);\nreturn 0;"
        ));
        assert!(!paired("mutex_lock(&p->m);\np->n++;\nreturn 0;"));
        assert!(!paired(
            "if (!mutex_trylock(&p->m))\nreturn -EBUSY;\np->n++;\nmutex_unlock(&p->m);\nreturn 0;"
        ));
        assert!(!paired(
            "spin_lock(&p->a);\np->n++;\nspin_unlock(&p->b);\nreturn 0;"
        ));
    }

    fn once(body: &str) -> bool {
        let src = format!("static void foo(struct foo *p, int x)\n{{\n{body}\n}}\n");
        with_context("double-free", &src, |ctx| {
            flow::frees_at_most_once(&ctx.flow_inputs(), ctx.function)
        })
    }

    #[test]
    fn a_single_free_outside_loops_needs_no_double_free_walk() {
        assert!(once("p->n = 0;"));
        assert!(once("if (x)\nkfree(p->buf);\np->buf = NULL;"));
        assert!(!once("kfree(p->buf);\nif (x)\nkfree(p->buf);"));
        assert!(!once("for (int i = 0; i < x; i++)\nkfree(p->bufs[i]);"));
        assert!(!once("struct foo_item *it, *tmp;\nlist_for_each_entry_safe(it, tmp, &p->items, node) {\nkfree(it);\n}"));
        assert!(!once("do {\nkfree(p->buf);\n} while (x--);"));
    }

    fn tested(body: &str) -> bool {
        let src = format!("static int foo(struct foo *p, int n)\n{{\n{body}\nreturn 0;\n}}\n");
        with_context("unchecked-alloc", &src, |ctx| {
            let calls: Vec<Node> = ctx.matches.iter().filter_map(|m| m.get("alloc")).collect();
            assert!(!calls.is_empty());
            calls.iter().all(|c| flow::tested_right_after(*c, &src))
        })
    }

    #[test]
    fn an_allocation_tested_by_the_next_statement_needs_no_walk() {
        assert!(tested(
            "char *buf = kmalloc(n, GFP_KERNEL);\nif (!buf)\nreturn -ENOMEM;\nbuf[0] = 0;"
        ));
        assert!(tested("p->buf = kzalloc(n, GFP_KERNEL);\n/* may fail */\nif (unlikely(p->buf == NULL))\nreturn -ENOMEM;"));
        assert!(tested(
            "p->buf = kzalloc(n, GFP_KERNEL);\nif (!p->buf || !n)\nreturn -ENOMEM;"
        ));
        // A use, a statement or another test comes first.
        assert!(!tested(
            "char *buf = kmalloc(n, GFP_KERNEL);\nbuf[0] = 0;\nif (!buf)\nreturn -ENOMEM;"
        ));
        assert!(!tested(
            "char *buf = kmalloc(n, GFP_KERNEL);\nif (buf[0] == 0)\nreturn -EINVAL;"
        ));
        assert!(!tested(
            "char *buf = kmalloc(n, GFP_KERNEL), *end = buf + n;\nif (!buf)\nreturn -ENOMEM;"
        ));
        assert!(!tested(
            "char *buf;\nif (n)\nbuf = kmalloc(n, GFP_KERNEL);\nbuf[0] = 0;"
        ));
        assert!(!tested(
            "char *buf = kmalloc(n, GFP_KERNEL);\nif (!n || !buf)\nreturn -ENOMEM;"
        ));
    }
}
