//! A matcher for the part of tree-sitter's query language that the rules' patterns are written
//! in: node kinds and `(_)`, fields, anonymous tokens (`"<"`), alternatives (`[...]`), the
//! `.` anchor before a child, captures, and `#eq?`/`#match?` on a capture. The query engine
//! walks every node of a function, punctuation included, and keeps a state per pattern that
//! might start there; profiled over drivers/, that walk was a fifth of the check's time. Here
//! the patterns are looked up by the kind of their root, and only a node of one of those kinds
//! is tried. The matches are those the query engine gives: a test compares them on every
//! fixture. A pattern this matcher cannot read (a quantifier, a negated field, an anchor after
//! the last child, several sibling patterns) is left to the query engine.

use std::cell::RefCell;
use std::num::NonZeroU16;
use std::rc::Rc;

use tree_sitter::{Language, Node, TreeCursor};

use crate::analysis::syntax;

/// One pattern of a query, read.
pub(super) struct Pattern {
    root: Step,
}

/// One node of a pattern: what it must be, under which field of its parent, whether it must be
/// the first named node after the previous step (`.`), what it captures, and the predicates on
/// those captures. A predicate is tested as soon as its capture is taken, so a call whose name
/// no pattern wants is not followed into its arguments; as in the query engine, it must hold
/// for every node of its capture, so testing each node when it is taken is the same test.
struct Step {
    field: Option<NonZeroU16>,
    immediate: bool,
    shape: Shape,
    captures: Vec<&'static str>,
    tests: Vec<Predicate>,
}

enum Shape {
    /// A named node of this kind (`None`: any named node that is not an `ERROR`, `(_)`), with
    /// the steps its children must match, in order.
    Named {
        kind: Option<u16>,
        children: Vec<Step>,
    },
    /// An anonymous node of this kind (`"<"`).
    Token(u16),
    /// Any of these (`[...]`).
    Alternatives(Vec<Step>),
}

#[derive(Clone)]
enum Predicate {
    Eq(&'static str, String),
    Match(&'static str, regex::Regex),
}

/// A capture of a match: the capture's name and the node.
pub(super) type Capture<'t> = (&'static str, Node<'t>);

impl Pattern {
    /// Reads one pattern (as `Query::start_byte_for_pattern` splits a query); `None` when it
    /// uses what this matcher does not follow, or is not valid.
    pub(super) fn read(text: &'static str, language: &Language) -> Option<Pattern> {
        let tokens = tokens(text)?;
        let mut reader = Reader {
            tokens,
            at: 0,
            language,
            predicates: Vec::new(),
        };
        let mut root = reader.top()?;
        if reader.at != reader.tokens.len() || root.field.is_some() || root.immediate {
            return None;
        }
        attach(&mut root, &reader.predicates);
        Some(Pattern { root })
    }

    /// The kinds the root node may have (one per alternative at the root); `None` for `(_)`,
    /// where any named node may start a match.
    pub(super) fn root_kinds(&self) -> Vec<Option<u16>> {
        fn kinds(step: &Step, out: &mut Vec<Option<u16>>) {
            match &step.shape {
                Shape::Named { kind, .. } => out.push(*kind),
                Shape::Token(kind) => out.push(Some(*kind)),
                Shape::Alternatives(steps) => steps.iter().for_each(|s| kinds(s, out)),
            }
        }
        let mut out = Vec::new();
        kinds(&self.root, &mut out);
        out
    }

    /// Calls `found` with the captures of every match whose root is `node`, once per distinct
    /// set of captures (the query engine's states that reach the end with the same captures
    /// are one match).
    pub(super) fn matches<'t>(
        &self,
        node: Node<'t>,
        source: &str,
        kids: &Kids<'t>,
        found: &mut dyn FnMut(&[Capture<'t>]),
    ) {
        let mut seen: Vec<Vec<Capture<'t>>> = Vec::new();
        let mut captures = Vec::new();
        step(
            &self.root,
            node,
            source,
            kids,
            &mut captures,
            &mut |captures| {
                if !seen.iter().any(|s| s == captures) {
                    seen.push(captures.to_vec());
                }
            },
        );
        for captures in &seen {
            found(captures);
        }
    }
}

/// Gives each step the predicates on what it captures.
fn attach(step: &mut Step, predicates: &[Predicate]) {
    step.tests = predicates
        .iter()
        .filter(|p| {
            let (Predicate::Eq(name, _) | Predicate::Match(name, _)) = p;
            step.captures.contains(name)
        })
        .cloned()
        .collect();
    match &mut step.shape {
        Shape::Named {
            children: steps, ..
        }
        | Shape::Alternatives(steps) => {
            steps.iter_mut().for_each(|s| attach(s, predicates));
        }
        Shape::Token(_) => {}
    }
}

/// Whether `node` passes the tests of a step that captures it.
fn passes(tests: &[Predicate], node: Node, source: &str) -> bool {
    tests.iter().all(|test| {
        let text = syntax::text(node, source);
        match test {
            Predicate::Eq(_, wanted) => text == wanted,
            Predicate::Match(_, regex) => regex.is_match(text),
        }
    })
}

/// Matches `step` on `node`, and on success calls `then` with the captures so far (more than
/// once when the children match in more than one way).
fn step<'t>(
    step_: &Step,
    node: Node<'t>,
    source: &str,
    kids: &Kids<'t>,
    captures: &mut Vec<Capture<'t>>,
    then: &mut dyn FnMut(&mut Vec<Capture<'t>>),
) {
    let mark = captures.len();
    let passes = || step_.tests.is_empty() || passes(&step_.tests, node, source);
    match &step_.shape {
        Shape::Named { kind, children } => {
            let is_kind = match kind {
                Some(kind) => node.kind_id() == *kind,
                None => node.is_named() && !node.is_error(),
            };
            if !is_kind || !passes() {
                return;
            }
            captures.extend(step_.captures.iter().map(|&name| (name, node)));
            if children.is_empty() {
                then(captures);
            } else {
                let children_of = kids.of(node);
                sequence(children, &children_of, source, kids, 0, captures, then);
            }
        }
        Shape::Token(kind) => {
            if node.kind_id() == *kind && passes() {
                captures.extend(step_.captures.iter().map(|&name| (name, node)));
                then(captures);
            }
        }
        Shape::Alternatives(alternatives) => {
            if !passes() {
                return;
            }
            captures.extend(step_.captures.iter().map(|&name| (name, node)));
            for alternative in alternatives {
                step(alternative, node, source, kids, captures, then);
            }
        }
    }
    captures.truncate(mark);
}

/// Matches `steps` on the children `kids[from..]` in order: each step on a later child than the
/// step before it; a step with a field only on a child under that field; an anchored step only
/// on the first named child left (anonymous ones before it are passed over).
fn sequence<'t>(
    steps: &[Step],
    children: &[Kid<'t>],
    source: &str,
    kids: &Kids<'t>,
    from: usize,
    captures: &mut Vec<Capture<'t>>,
    then: &mut dyn FnMut(&mut Vec<Capture<'t>>),
) {
    let Some((first, rest)) = steps.split_first() else {
        then(captures);
        return;
    };
    for (i, &(field, kid)) in children.iter().enumerate().skip(from) {
        if first.field.is_none_or(|f| field == Some(f)) {
            step(first, kid, source, kids, captures, &mut |captures| {
                sequence(rest, children, source, kids, i + 1, captures, then)
            });
        }
        if first.immediate && kid.is_named() {
            break;
        }
    }
}

/// A child node and the field it is under.
type Kid<'t> = (Option<NonZeroU16>, Node<'t>);

/// The children of the nodes the patterns looked into, kept while the patterns of one node are
/// matched: several patterns start at the same node (every call, every comparison) and look at
/// the same children.
pub(super) struct Kids<'t> {
    cursor: RefCell<TreeCursor<'t>>,
    known: RefCell<Vec<(usize, Rc<[Kid<'t>]>)>>,
}

impl<'t> Kids<'t> {
    pub(super) fn new(root: Node<'t>) -> Kids<'t> {
        Kids {
            cursor: RefCell::new(root.walk()),
            known: RefCell::new(Vec::new()),
        }
    }

    /// Forgets the children read so far (before the patterns of another node are matched).
    pub(super) fn clear(&self) {
        self.known.borrow_mut().clear();
    }

    fn of(&self, node: Node<'t>) -> Rc<[Kid<'t>]> {
        if let Some((_, kids)) = self.known.borrow().iter().find(|(id, _)| *id == node.id()) {
            return Rc::clone(kids);
        }
        let mut cursor = self.cursor.borrow_mut();
        cursor.reset(node);
        let mut kids = Vec::new();
        if cursor.goto_first_child() {
            loop {
                kids.push((cursor.field_id(), cursor.node()));
                if !cursor.goto_next_sibling() {
                    break;
                }
            }
        }
        let kids: Rc<[Kid<'t>]> = kids.into();
        self.known.borrow_mut().push((node.id(), Rc::clone(&kids)));
        kids
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenAlternatives,
    CloseAlternatives,
    Anchor,
    Field(&'static str),
    Name(&'static str),
    Capture(&'static str),
    Predicate(&'static str),
    Text(String),
}

/// The tokens of a pattern's text, comments dropped; `None` on a quantifier, a negated field or
/// anything else this matcher does not read.
fn tokens(text: &'static str) -> Option<Vec<Token>> {
    let bytes = text.as_bytes();
    let word_end = |mut i: usize| {
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
        {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => (out.push(Token::Open), i += 1).1,
            b')' => (out.push(Token::Close), i += 1).1,
            b'[' => (out.push(Token::OpenAlternatives), i += 1).1,
            b']' => (out.push(Token::CloseAlternatives), i += 1).1,
            b'.' => (out.push(Token::Anchor), i += 1).1,
            b'@' => {
                let end = word_end(i + 1);
                out.push(Token::Capture(&text[i + 1..end]));
                i = end;
            }
            b'#' => {
                let end = word_end(i + 1);
                if !matches!(bytes.get(end), Some(b'?')) {
                    return None;
                }
                out.push(Token::Predicate(&text[i + 1..end]));
                i = end + 1;
            }
            b'"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match *bytes.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            value.push(match *bytes.get(i + 1)? {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'0' => '\0',
                                other => char::from(other),
                            });
                            i += 2;
                        }
                        _ => {
                            let c = text[i..].chars().next()?;
                            value.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
                out.push(Token::Text(value));
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                // A node kind or a field name; `.` ends it here (it is the anchor).
                let mut end = i;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                if bytes.get(end) == Some(&b':') {
                    out.push(Token::Field(&text[i..end]));
                    end += 1;
                } else {
                    out.push(Token::Name(&text[i..end]));
                }
                i = end;
            }
            _ => return None,
        }
    }
    Some(out)
}

struct Reader<'l> {
    tokens: Vec<Token>,
    at: usize,
    language: &'l Language,
    predicates: Vec<Predicate>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    /// The whole pattern: a node, or a group of one node and predicates (`((node) (#eq? ..))`).
    fn top(&mut self) -> Option<Step> {
        let mut root = None;
        if self.peek() == Some(&Token::Open)
            && matches!(
                self.tokens.get(self.at + 1),
                Some(Token::Open | Token::OpenAlternatives)
            )
        {
            self.at += 1;
            loop {
                match self.peek()? {
                    Token::Close => {
                        self.at += 1;
                        break;
                    }
                    Token::Open if self.tokens.get(self.at + 1).is_some_and(is_predicate) => {
                        self.predicate()?;
                    }
                    _ if root.is_none() => root = Some(self.step(None, false)?),
                    _ => return None,
                }
            }
        } else {
            root = Some(self.step(None, false)?);
        }
        root
    }

    /// A node, a token or alternatives, with the captures that follow it.
    fn step(&mut self, field: Option<NonZeroU16>, immediate: bool) -> Option<Step> {
        let shape = match self.next()? {
            Token::Open => {
                let kind = match self.next()? {
                    Token::Name("_") => None,
                    Token::Name(name) => Some(self.kind(name, true)?),
                    _ => return None,
                };
                let mut children = Vec::new();
                let mut anchored = false;
                let mut child_field = None;
                loop {
                    match self.peek()? {
                        Token::Close => {
                            self.at += 1;
                            // An anchor after the last child, or a field naming nothing.
                            if anchored || child_field.is_some() {
                                return None;
                            }
                            break;
                        }
                        Token::Anchor => {
                            self.at += 1;
                            anchored = true;
                        }
                        Token::Field(name) => {
                            let name = *name;
                            self.at += 1;
                            child_field = Some(self.language.field_id_for_name(name)?);
                        }
                        Token::Open if self.tokens.get(self.at + 1).is_some_and(is_predicate) => {
                            self.predicate()?;
                        }
                        _ => {
                            children.push(self.step(child_field.take(), anchored)?);
                            anchored = false;
                        }
                    }
                }
                Shape::Named { kind, children }
            }
            Token::Text(text) => Shape::Token(self.kind(&text, false)?),
            Token::OpenAlternatives => {
                let mut alternatives = Vec::new();
                while self.peek()? != &Token::CloseAlternatives {
                    alternatives.push(self.step(None, false)?);
                }
                self.at += 1;
                if alternatives.is_empty() {
                    return None;
                }
                Shape::Alternatives(alternatives)
            }
            _ => return None,
        };
        let mut captures = Vec::new();
        while let Some(Token::Capture(name)) = self.peek() {
            captures.push(*name);
            self.at += 1;
        }
        Some(Step {
            field,
            immediate,
            shape,
            captures,
            tests: Vec::new(),
        })
    }

    /// `(#eq? @capture "text")` or `(#match? @capture "regex")`.
    fn predicate(&mut self) -> Option<()> {
        let (Some(Token::Open), Some(Token::Predicate(name)), Some(Token::Capture(capture))) =
            (self.next(), self.next(), self.next())
        else {
            return None;
        };
        let (Some(Token::Text(text)), Some(Token::Close)) = (self.next(), self.next()) else {
            return None;
        };
        self.predicates.push(match name {
            "eq" => Predicate::Eq(capture, text),
            "match" => Predicate::Match(capture, regex::Regex::new(&text).ok()?),
            _ => return None,
        });
        Some(())
    }

    /// The id of a node kind, as the query engine resolves it; `None` for a kind the grammar
    /// does not have.
    fn kind(&self, name: &str, named: bool) -> Option<u16> {
        match self.language.id_for_node_kind(name, named) {
            0 => None,
            id => Some(id),
        }
    }
}

fn is_predicate(token: &Token) -> bool {
    matches!(token, Token::Predicate(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &'static str) -> Option<Pattern> {
        Pattern::read(text, &syntax::language())
    }

    #[test]
    fn reads_what_the_rules_write_and_refuses_the_rest() {
        assert!(read("((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @arg)) @call (#eq? @fn \"f\"))").is_some());
        assert!(read(
            "(binary_expression left: (_) operator: [\"<\" \">=\"] right: (number_literal) @zero)"
        )
        .is_some());
        assert!(
            read("(subscript_expression argument: [(identifier) (field_expression)] @array)")
                .is_some()
        );
        // Quantifiers, negated fields, a trailing anchor, sibling patterns, unknown kinds.
        assert!(read("(argument_list (_)* @args)").is_none());
        assert!(read("(call_expression !arguments)").is_none());
        assert!(read("(argument_list (_) @last .)").is_none());
        assert!(read("((identifier) (identifier))").is_none());
        assert!(read("(no_such_kind)").is_none());
        assert!(read("((identifier) @x (#any-of? @x \"a\" \"b\"))").is_none());
    }

    #[test]
    fn matches_every_way_the_children_can_match_and_each_set_of_captures_once() {
        let source = "void f(void)\n{\n\tg(sizeof(a), sizeof(b), c);\n}\n";
        let parse = syntax::parse(source, None);
        let pattern = read("(argument_list (sizeof_expression) @size)").unwrap();
        let mut found = Vec::new();
        let kids = Kids::new(parse.tree.root_node());
        syntax::preorder(parse.tree.root_node(), |node, _| {
            pattern.matches(node, source, &kids, &mut |captures| {
                found.push(syntax::text(captures[0].1, source).to_owned());
            });
            true
        });
        assert_eq!(found, ["sizeof(a)", "sizeof(b)"]);
        let anchored = read("(argument_list . (_) . (_) @second)").unwrap();
        let uncaptured = read("((argument_list (sizeof_expression)) @list)").unwrap();
        let (mut second, mut lists) = (Vec::new(), 0);
        syntax::preorder(parse.tree.root_node(), |node, _| {
            anchored.matches(node, source, &kids, &mut |captures| {
                second.push(syntax::text(captures[0].1, source).to_owned());
            });
            uncaptured.matches(node, source, &kids, &mut |_| lists += 1);
            true
        });
        assert_eq!(second, ["sizeof(b)"]);
        assert_eq!(lists, 1);
    }
}
