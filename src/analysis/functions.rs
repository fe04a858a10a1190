//! Function definitions of a file, each with a hash of its normalized text (comments and
//! whitespace out), and the bookkeeping that tells which functions an edit changed.

use crate::analysis::syntax::Fields as _;
use std::collections::HashMap;
use std::sync::Arc;

use tree_sitter::{InputEdit, Node, Tree};

use super::finding::{ByteRange, Edge};

/// One token of a function: where it starts in the function text and in the normalized text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token {
    original: u32,
    normalized: u32,
    len: u32,
}

/// A function definition, as found in the current text.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub range: ByteRange,
    /// Hash of the normalized text; equal hashes mean the same code, whatever the layout.
    pub hash: u64,
    /// What the rest of the file tells the rules about this function's callees (the
    /// fingerprint of `summary::LockSummaries`): equal for two versions of the file whose
    /// functions release the same locks. Part of the cache key with `hash`.
    pub context: u64,
    /// The range plus the line above and the rest of the last line: what an edit must miss for
    /// the function to count as untouched.
    outer: ByteRange,
    /// Inside an `#if 0` block: never compiled, never reported (part of the hash).
    disabled: bool,
    /// For a function with a syntax error, the shape of its tree (0 otherwise; part of the
    /// hash): the parser's error recovery can read the same text two ways depending on the code
    /// around it, and the rules read the tree.
    shape: u64,
    tokens: Arc<[Token]>,
}

impl Function {
    /// Reads the function defined by `node`; `text` is the function's own text
    /// (`node.byte_range()` of the document).
    pub fn new(node: Node, text: &str) -> Function {
        let start = node.start_byte();
        let mut tokens = Vec::new();
        let mut normalized = String::with_capacity(text.len());
        collect_tokens(node, start, text, &mut tokens, &mut normalized);
        let name = function_name(node)
            .and_then(|n| text.get(n.start_byte() - start..n.end_byte() - start))
            .unwrap_or("")
            .to_owned();
        // Masked annotations (`__acquires(lock)`) are not tokens of the tree, but rules read them
        // in the header, so the header's own text is part of the hash.
        let header_end = node.field("body").map_or(start, |b| b.start_byte());
        normalized.push('\0');
        normalized.extend(
            text[..header_end - start]
                .chars()
                .filter(|c| !c.is_whitespace()),
        );
        let shape = error_shape(node);
        if shape != 0 {
            normalized.push('\0');
            normalized.push_str(&shape.to_string());
        }
        Function {
            name,
            range: ByteRange::of(node),
            hash: xxhash_rust::xxh3::xxh3_64(normalized.as_bytes()),
            context: 0,
            outer: ByteRange::of(node),
            disabled: false,
            shape,
            tokens: tokens.into(),
        }
    }

    /// The same function at another place (moved by edits elsewhere).
    pub fn moved_to(&self, range: ByteRange) -> Function {
        let delta = range.start as i64 - self.range.start as i64;
        let outer = ByteRange::new(
            (self.outer.start as i64 + delta).max(0) as usize,
            (self.outer.end as i64 + delta).max(0) as usize,
        );
        Function {
            range,
            outer,
            ..self.clone()
        }
    }

    /// Maps a document offset inside this function to an offset in its normalized text. An
    /// offset between two tokens is the end of the one before it as an `Edge::End` and the start
    /// of the one after it as an `Edge::Start`: the layout between them is not kept, and a range
    /// must not take it in (`kfree(p)` stays `kfree(p)` when its `;` moves to the next line).
    pub fn to_normalized(&self, offset: usize, edge: Edge) -> usize {
        let relative = offset.saturating_sub(self.range.start) as u32;
        let i = self.tokens.partition_point(|t| match edge {
            Edge::Start => t.original <= relative,
            Edge::End => t.original < relative,
        });
        match i.checked_sub(1).map(|i| self.tokens[i]) {
            Some(t) => (t.normalized + (relative - t.original).min(t.len)) as usize,
            None => 0,
        }
    }

    /// Maps an offset in the normalized text back to a document offset in this function; `edge`
    /// as in `to_normalized`.
    pub fn from_normalized(&self, offset: usize, edge: Edge) -> usize {
        let offset = offset as u32;
        let i = self.tokens.partition_point(|t| match edge {
            Edge::Start => t.normalized <= offset,
            Edge::End => t.normalized < offset,
        });
        let relative = match i.checked_sub(1).map(|i| self.tokens[i]) {
            Some(t) => t.original + (offset - t.normalized).min(t.len),
            None => 0,
        };
        self.range.start + relative as usize
    }
}

fn collect_tokens(
    node: Node,
    start: usize,
    text: &str,
    tokens: &mut Vec<Token>,
    normalized: &mut String,
) {
    // A walk with a cursor, not recursion: a function can nest without bound.
    let mut cursor = node.walk();
    loop {
        let node = cursor.node();
        let range = node.start_byte() - start..node.end_byte() - start;
        // Comments are layout, except a suppression comment, which changes what is reported.
        let layout = node.kind_name() == "comment"
            && !text
                .get(range.clone())
                .is_some_and(|c| c.contains(super::rules::SUPPRESS_MARKER));
        if !layout && node.child_count() == 0 {
            if let Some(token) = text.get(range.clone()).filter(|t| !t.is_empty()) {
                if !normalized.is_empty() {
                    normalized.push(' ');
                }
                tokens.push(Token {
                    original: range.start as u32,
                    normalized: normalized.len() as u32,
                    len: token.len() as u32,
                });
                normalized.push_str(token);
            }
        }
        if !layout && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// The identifier naming a function definition.
pub fn function_name(node: Node) -> Option<Node> {
    let mut declarator = node.field("declarator")?;
    loop {
        match declarator.kind_name() {
            "function_declarator" => {
                let inner = declarator.field("declarator")?;
                if inner.kind_name() == "identifier" {
                    return Some(inner);
                }
                declarator = inner;
            }
            "identifier" => return Some(declarator),
            _ => declarator = declarator.field("declarator")?,
        }
    }
}

/// Where the comment right above the function starting at `start` begins: a `/* ... */` block
/// or a run of `//` lines that ends on the line before the function (blank space between them
/// allowed, at most one empty line), at most `MAX_COMMENT_BYTES` long. It is what a reviewer reads
/// first: "Called with desc->iuspin locked", "Context: ncm->lock held", who frees what.
pub fn leading_comment(text: &str, start: usize) -> Option<usize> {
    let before = &text[..start.min(text.len())];
    let trimmed = before.trim_end();
    if before[trimmed.len()..].matches('\n').count() > 2 {
        return None;
    }
    let begin = if trimmed.ends_with("*/") {
        trimmed.rfind("/*")?
    } else {
        // A run of `//` lines.
        let mut begin = None;
        let mut end = trimmed.len();
        loop {
            let line_start = trimmed[..end].rfind('\n').map_or(0, |i| i + 1);
            if !trimmed[line_start..end].trim_start().starts_with("//") {
                break;
            }
            begin = Some(
                line_start
                    + (trimmed[line_start..end].len()
                        - trimmed[line_start..end].trim_start().len()),
            );
            if line_start == 0 {
                break;
            }
            end = line_start - 1;
        }
        begin?
    };
    // Only a comment that starts its line: not the tail of a statement's trailing comment.
    let line_start = before[..begin].rfind('\n').map_or(0, |i| i + 1);
    (before[line_start..begin].trim().is_empty() && start - begin <= MAX_COMMENT_BYTES)
        .then_some(begin)
}

/// The longest comment `leading_comment` takes.
pub const MAX_COMMENT_BYTES: usize = 4096;

/// Whether `text` may define a function: whether an opening brace that can start a function's
/// body stands in its code, outside comments, string and character literals and preprocessor
/// directives. A function definition has a body, and a body is braces the parser sees as code,
/// so text without them has nothing to check and need not be parsed: the headers that only
/// `#define` registers (half the bytes of `drivers/`), and those that only define types and
/// tables. A brace cannot open a body where the code before it opens an initializer or a type:
/// after `=`, `,`, `(` or another `{`, and after `struct`, `union` or `enum` with or without a
/// tag; a body follows a parameter list or an attribute (`)`), and anything else is taken as a
/// possible body too. Lines end where the parser sees them end: at `\n` or a lone `\r`, not
/// after a backslash. Where the parser may read code that a compiler would not (an unclosed
/// comment or literal, code after a comment in a directive), the answer is yes: a file is
/// skipped only when no reading of it holds a brace that may open a body.
pub fn may_define_functions(text: &str) -> bool {
    let bytes = text.as_bytes();
    let ends_line = |i: usize| bytes[i] == b'\n' || super::syntax::is_lone_cr(bytes, i);
    // The length of a backslash and line break at `i` (a spliced line), or 0.
    let splice = |i: usize| match (bytes.get(i + 1), bytes.get(i + 2)) {
        _ if bytes[i] != b'\\' => 0,
        (Some(b'\r'), Some(b'\n')) => 3,
        (Some(b'\n' | b'\r'), _) => 2,
        _ => 0,
    };
    let (mut i, mut line_start, mut directive) = (0, true, false);
    // The last three tokens of code before `i`, the latest first.
    let mut last = [Lead::None; 3];
    let push = |last: &mut [Lead; 3], token: Lead, directive: bool| {
        if !directive {
            *last = [token, last[0], last[1]];
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        let spliced = splice(i);
        if spliced > 0 {
            i += spliced;
            continue;
        }
        if ends_line(i) {
            (line_start, directive) = (true, false);
            i += 1;
            continue;
        }
        match (b, bytes.get(i + 1)) {
            (b'/', Some(b'*')) => {
                // The parser reads an unclosed comment as code; after a comment, the rest of a
                // directive's line can be read as code too.
                let Some(at) = text[i + 2..].find("*/") else {
                    return true;
                };
                i += 2 + at + 2;
                (line_start, directive) = (false, false);
                continue;
            }
            (b'/', Some(b'/')) => {
                while i < bytes.len() && !ends_line(i) {
                    i += splice(i).max(1);
                }
                continue;
            }
            (b'"' | b'\'', _) => {
                i += 1;
                while i < bytes.len() && bytes[i] != b && !ends_line(i) {
                    i += if bytes[i] == b'\\' {
                        splice(i).max(2)
                    } else {
                        1
                    };
                }
                // The parser reads the rest of the line after an unclosed literal as code.
                if bytes.get(i) != Some(&b) && !directive {
                    return true;
                }
                i += usize::from(bytes.get(i) == Some(&b));
                line_start = false;
                push(&mut last, Lead::Other, directive);
                continue;
            }
            (b'#', _) if line_start => directive = true,
            (b'{', _) if !directive && may_open_body(&last) => return true,
            _ if b.is_ascii_alphanumeric() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let token = match &bytes[start..i] {
                    b"struct" | b"union" | b"enum" => Lead::Tag,
                    b"typedef" => Lead::Typedef,
                    _ => Lead::Word,
                };
                push(&mut last, token, directive);
                line_start = false;
                continue;
            }
            _ if !b.is_ascii_whitespace() => push(&mut last, Lead::Punct(b), directive),
            _ => {}
        }
        line_start &= b.is_ascii_whitespace();
        i += 1;
    }
    false
}

/// A token of code before a brace, as far as `may_define_functions` tells them apart.
#[derive(Clone, Copy)]
enum Lead {
    /// No token: the start of the text.
    None,
    /// `struct`, `union` or `enum`.
    Tag,
    Typedef,
    /// Any other identifier, keyword or number.
    Word,
    Punct(u8),
    /// A string or character literal.
    Other,
}

/// Whether a `{` after `last` (the latest token first) may open a function's body: not after
/// what opens an initializer (`=`, `,`, `(`, `{`), nor after `struct` or `struct tag` that
/// start a declaration (after `;`, a brace, `=`, `,`, `(` or `typedef`). After another word
/// (`_packed struct tag {`) the parser may read the words before the tag as a function's
/// declarator, so that brace is taken as a possible body.
fn may_open_body(last: &[Lead; 3]) -> bool {
    let starts = |token: &Lead| {
        matches!(
            token,
            Lead::None | Lead::Typedef | Lead::Punct(b';' | b'{' | b'}' | b'=' | b',' | b'(')
        )
    };
    !match last {
        [Lead::Punct(b'=' | b',' | b'(' | b'{'), ..] => true,
        [Lead::Tag, before, _] => starts(before),
        [Lead::Word, Lead::Tag, before] => starts(before),
        _ => false,
    }
}

/// The function definitions of a tree, including those inside `#if` blocks and `extern "C"`,
/// and those that a macro pushed into an `ERROR` node.
pub fn function_nodes(tree: &Tree) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    collect_function_nodes(tree.root_node(), &mut out);
    out
}

/// Nodes whose children can be top-level definitions: `#if` blocks and their alternatives,
/// `extern "C"`, and the `ERROR` nodes a macro makes.
pub fn holds_definitions(kind: &str) -> bool {
    matches!(
        kind,
        "preproc_if"
            | "preproc_ifdef"
            | "preproc_else"
            | "preproc_elif"
            | "preproc_elifdef"
            | "linkage_specification"
            | "declaration_list"
            | "ERROR"
    )
}

fn collect_function_nodes<'t>(node: Node<'t>, out: &mut Vec<Node<'t>>) {
    // An explicit stack, not recursion: broken code nests `ERROR` nodes without bound.
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            match child.kind_name() {
                "function_definition" => out.push(child),
                kind if holds_definitions(kind) => stack.push(child),
                _ => {}
            }
        }
    }
    out.sort_by_key(|n| n.start_byte());
}

/// A source of text that can hand out any byte range as a string (a `str` or a rope).
pub trait TextSource {
    fn slice(&self, range: ByteRange) -> std::borrow::Cow<'_, str>;
    /// Where the line holding `offset` starts, and where it ends before its line break.
    fn line_bounds(&self, offset: usize) -> (usize, usize);
}

impl TextSource for str {
    fn slice(&self, range: ByteRange) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.get(range.start..range.end).unwrap_or(""))
    }

    fn line_bounds(&self, offset: usize) -> (usize, usize) {
        (
            super::syntax::line_start(self, offset),
            super::syntax::line_end(self, offset),
        )
    }
}

/// Reads the function defined by `node` in a whole document. Suppression comments on the line
/// above the function and after its end on its last line apply to its findings
/// (`rules::is_suppressed` reads them), so they are part of its hash, and an edit there counts as
/// an edit of the function.
fn read_function(node: Node, text: &(impl TextSource + ?Sized), context: u64) -> Function {
    let range = ByteRange::of(node);
    let first_line = text.line_bounds(range.start).0;
    let outer_start = match first_line {
        0 => 0,
        _ => text.line_bounds(first_line - 1).0,
    };
    let line_end = text.line_bounds(range.end).1.max(range.end);
    // One past the line's end, so that typing at the end of the line touches the function.
    let outer = ByteRange::new(outer_start, line_end + 1);
    let mut function = Function::new(node, &text.slice(range));
    let before = text.slice(ByteRange::new(outer.start, range.start));
    let after = text.slice(ByteRange::new(range.end, line_end));
    let disabled = disabled(node, text);
    if disabled
        || before.contains(super::rules::SUPPRESS_MARKER)
        || after.contains(super::rules::SUPPRESS_MARKER)
    {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&function.hash.to_le_bytes());
        hasher.update(&[u8::from(disabled)]);
        hasher.update(before.as_bytes());
        hasher.update(b"\0");
        hasher.update(after.as_bytes());
        function.hash = hasher.digest();
    }
    Function {
        outer,
        context,
        disabled,
        ..function
    }
}

/// The shape of a tree with a syntax error: a hash of its node kinds in preorder, with where
/// each node's children end; 0 for a tree without one (the usual case, answered in O(1)).
fn error_shape(node: Node) -> u64 {
    if !node.has_error() {
        return 0;
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    // A cursor walk, not recursion: broken code nests `ERROR` nodes without bound.
    let mut cursor = node.walk();
    loop {
        hasher.update(&cursor.node().kind_id().to_le_bytes());
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            hasher.update(b")");
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return hasher.digest().max(1);
            }
        }
    }
}

/// Whether the function of `node` is in an `#if 0` block (an edit far above it can change that).
fn disabled(node: Node, text: &(impl TextSource + ?Sized)) -> bool {
    super::syntax::never_compiled(node, |c| text.slice(ByteRange::of(c)).trim() == "0")
}

/// The functions of one document, kept up to date across edits.
#[derive(Clone, Debug, Default)]
pub struct FunctionIndex {
    functions: Vec<Function>,
    context: u64,
}

/// The fingerprint of what the file's functions tell the rules about each other.
fn file_context(tree: &Tree, text: &(impl TextSource + ?Sized)) -> u64 {
    let root = tree.root_node();
    let whole = text.slice(ByteRange::new(0, root.end_byte()));
    super::summary::summarize(root, &whole).fingerprint()
}

impl FunctionIndex {
    /// Reads every function of `tree`.
    pub fn build(tree: &Tree, text: &(impl TextSource + ?Sized)) -> FunctionIndex {
        let context = file_context(tree, text);
        let functions = function_nodes(tree)
            .into_iter()
            .map(|node| read_function(node, text, context))
            .collect();
        FunctionIndex { functions, context }
    }

    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The function whose range contains `offset`.
    pub fn at(&self, offset: usize) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.range.end < offset);
        self.functions
            .get(i)
            .filter(|f| f.range.start <= offset && offset <= f.range.end)
    }

    /// Brings the index up to date with `tree`, which was parsed after `edits` were applied.
    ///
    /// Functions that no edit touched keep their hash and only move; every other function is
    /// read again. Returns the indices (in the new index) of functions whose hash is new, so a
    /// whitespace-only edit inside a function returns nothing.
    pub fn update(
        &mut self,
        tree: &Tree,
        text: &(impl TextSource + ?Sized),
        edits: &[InputEdit],
    ) -> Vec<usize> {
        let mut untouched: HashMap<(usize, usize), Function> =
            HashMap::with_capacity(self.functions.len());
        let mut old_hashes = std::collections::HashSet::with_capacity(self.functions.len());
        for old in self.functions.drain(..) {
            old_hashes.insert(old.hash);
            if let (Some(outer), Some(range)) = (shift(old.outer, edits), shift(old.range, edits)) {
                untouched.insert(
                    (range.start, range.end),
                    Function {
                        range,
                        outer,
                        ..old
                    },
                );
            }
        }
        // When what the functions tell each other changed (a callee now releases a lock), every
        // function's findings may change: all of them count as changed.
        let context = file_context(tree, text);
        let all = context != self.context;
        self.context = context;
        let mut changed = Vec::new();
        for node in function_nodes(tree) {
            let untouched = untouched
                .remove(&(node.start_byte(), node.end_byte()))
                .filter(|f| f.disabled == disabled(node, text) && f.shape == error_shape(node));
            let function = match untouched {
                Some(function) => {
                    if all {
                        changed.push(self.functions.len());
                    }
                    Function {
                        context,
                        ..function
                    }
                }
                None => {
                    let function = read_function(node, text, context);
                    if all || !old_hashes.contains(&function.hash) {
                        changed.push(self.functions.len());
                    }
                    function
                }
            };
            self.functions.push(function);
        }
        changed
    }
}

/// Moves a range through a sequence of edits; `None` when an edit touched it.
pub fn shift(mut range: ByteRange, edits: &[InputEdit]) -> Option<ByteRange> {
    for edit in edits {
        if edit.old_end_byte <= range.start && edit.start_byte < range.start {
            let moved = |offset: usize| offset - edit.old_end_byte + edit.new_end_byte;
            range = ByteRange::new(moved(range.start), moved(range.end));
        } else if edit.start_byte >= range.end {
            continue;
        } else {
            return None;
        }
    }
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::syntax;

    fn index(text: &str) -> (FunctionIndex, Tree) {
        let parse = syntax::parse(text, None);
        (FunctionIndex::build(&parse.tree, text), parse.tree)
    }

    #[test]
    fn text_without_a_brace_that_may_open_a_body_defines_no_function() {
        let none = [
            "#define REG_A 0x10\n#define REG_B(n) (0x20 + (n))\n",
            "#define FOO do { bar(); } while (0)\n",
            "#define LONG_ONE(x) \\\n\tdo { (x)++; } while (0)\n",
            "#define CRLF_ONE(x) \\\r\n\t{ (x)++; }\r\n",
            "/* int f(void) { return 0; } */\n// int g(void) { }\n",
            "// a comment, \\\n{ spliced into it }\n",
            "extern int f(int x);\nstatic const char *s = \"{\";\nchar c = '}';\n",
            "  # if 0 /* { */\n#endif\n",
            "#define REG_C 0x30 /* a comment */\n#define REG_D 0x40 // { another\n",
            // Types and tables: a brace that opens no body.
            "struct regs {\n\tu32 ctrl;\n\tunion {\n\t\tu32 a;\n\t\tstruct { u16 lo, hi; } half;\n\t};\n};\n",
            "typedef struct {\n\tint x;\n} point_t;\nenum mode { MODE_A, MODE_B };\n",
            "static const struct id ids[] = {\n\t{ .name = \"a\", .data = (void *)1 },\n\t{ }\n};\n",
            "int table[2][2] = { { 1, 2 }, { 3, 4 } };\nstruct s x = { .inner = { 0 } };\n",
            "#define X(n) n,\nenum reasons {\n#ifdef A\n\tR_A,\n#endif\n};\n",
            "struct lock_class_key;\nstruct dev /* a comment */ {\n\tint id;\n};\n",
        ];
        for text in none {
            assert!(!may_define_functions(text), "{text:?}");
            let parse = syntax::parse(text, None);
            assert!(function_nodes(&parse.tree).is_empty(), "{text:?}");
        }
        let some = [
            "int f(void) { return 0; }\n",
            "#define X 1\nint f(void)\n{\n}\n",
            "#define X 1 /* a comment \n over two lines */\nint f(void) { }\n",
            "char *s = \"unclosed\nint f(void) { }\n",
            "int f(void) /* unclosed\n{ return 0; }\n",
            "char *s = \"unclosed { }\n",
            "#define X 1 /* a comment */ {\n",
            "/* a comment */ #define X {\n",
            "#if A\rint f(void) { }\r",
            "int x; #define FOO {\n",
            // What may open a body: after a parameter list or an attribute, a K&R parameter
            // declaration, a word that is not a tag, a literal, or a type after a word that the
            // parser may take for a function's declarator.
            "struct s;\nint f(void)\n#ifdef A\n{\n#endif\n}\n",
            "void f(void) __releases(x) { }\n",
            "int f(a) int a; { return a; }\n",
            "int f(void) MACRO { }\n",
            "extern \"C\" {\nint f(void);\n}\n",
            "_packed struct header {\n\tint x;\n};\n",
            "DECLARE(x) enum reason {\n\tR_A,\n};\n",
            "static struct s *p = &(struct s){ .x = 1 };\n",
        ];
        for text in some {
            assert!(may_define_functions(text), "{text:?}");
        }
    }

    #[test]
    fn whitespace_and_comments_do_not_change_the_hash() {
        let (a, _) = index("int f(int x) { return x + 1; }\n");
        let (b, _) = index("int f(int x)\n{\n\t/* one more */\n\treturn x+1;\n}\n");
        let (c, _) = index("int f(int x) { return x + 2; }\n");
        assert_eq!(a.functions()[0].hash, b.functions()[0].hash);
        assert_ne!(a.functions()[0].hash, c.functions()[0].hash);
    }

    #[test]
    fn normalized_offsets_round_trip_on_token_boundaries() {
        let text = "int f(int x)\n{\n\treturn   x + 1;\n}\n";
        let (idx, _) = index(text);
        let f = &idx.functions()[0];
        let x = text.find("x + 1").unwrap();
        // A token's start as a start, its end as an end; inside a token either way.
        assert_eq!(
            f.from_normalized(f.to_normalized(x, Edge::Start), Edge::Start),
            x
        );
        assert_eq!(
            f.from_normalized(f.to_normalized(x + 1, Edge::End), Edge::End),
            x + 1
        );
        for edge in [Edge::Start, Edge::End] {
            let r = text.find("return").unwrap() + 2;
            assert_eq!(f.from_normalized(f.to_normalized(r, edge), edge), r);
        }
    }

    #[test]
    fn a_range_end_keeps_to_its_token_when_the_layout_after_it_changes() {
        let before = "int f(int *p)\n{\n\tkfree(p);\n\treturn 0;\n}\n";
        let after = "int f(int *p)\n{\n\tkfree(p)\n;\n\treturn 0;\n}\n";
        let (a, _) = index(before);
        let (b, _) = index(after);
        let (a, b) = (&a.functions()[0], &b.functions()[0]);
        assert_eq!(a.hash, b.hash);
        let start = before.find("kfree").unwrap();
        let end = before.find(';').unwrap();
        let (s, e) = (
            a.to_normalized(start, Edge::Start),
            a.to_normalized(end, Edge::End),
        );
        assert_eq!(
            &after[b.from_normalized(s, Edge::Start)..b.from_normalized(e, Edge::End)],
            "kfree(p)"
        );
        // As a start, the same offset belongs to the `;`.
        let semicolon = b.from_normalized(a.to_normalized(end, Edge::Start), Edge::Start);
        assert_eq!(&after[semicolon..semicolon + 1], ";");
    }

    #[test]
    fn an_edit_changes_only_its_own_function() {
        let before = "int f(void) { return 1; }\nint g(void) { return 2; }\n";
        let (mut idx, mut tree) = index(before);
        // Replace the "1" in f by "10".
        let at = before.find('1').unwrap();
        let after = format!("{}10{}", &before[..at], &before[at + 1..]);
        let edit = InputEdit {
            start_byte: at,
            old_end_byte: at + 1,
            new_end_byte: at + 2,
            start_position: tree_sitter::Point::new(0, at),
            old_end_position: tree_sitter::Point::new(0, at + 1),
            new_end_position: tree_sitter::Point::new(0, at + 2),
        };
        tree.edit(&edit);
        let new_tree = syntax::parse(&after, Some(&tree)).tree;
        let changed = idx.update(&new_tree, after.as_str(), &[edit]);
        assert_eq!(changed, vec![0]);
        assert_eq!(idx.functions()[1].range.start, after.find("int g").unwrap());
    }

    #[test]
    fn a_callee_that_starts_releasing_a_lock_changes_its_callers() {
        let before = "static void put(struct s *s)\n{\n\ts->n--;\n}\nstatic int get(struct s *s)\n{\n\tmutex_lock(&s->lock);\n\tput(s);\n\treturn 0;\n}\n";
        let (mut idx, mut tree) = index(before);
        let old_text = "s->n--;";
        let new_text = "mutex_unlock(&s->lock);";
        let at = before.find(old_text).unwrap();
        let after = before.replacen(old_text, new_text, 1);
        let edit = InputEdit {
            start_byte: at,
            old_end_byte: at + old_text.len(),
            new_end_byte: at + new_text.len(),
            start_position: tree_sitter::Point::new(2, 1),
            old_end_position: tree_sitter::Point::new(2, 1 + old_text.len()),
            new_end_position: tree_sitter::Point::new(2, 1 + new_text.len()),
        };
        tree.edit(&edit);
        let new_tree = syntax::parse(&after, Some(&tree)).tree;
        let caller_context = idx.functions()[1].context;
        let changed = idx.update(&new_tree, after.as_str(), &[edit]);
        // `get` did not change, but what `put` now does to its lock changes what `get` holds.
        assert_eq!(changed, vec![0, 1]);
        assert_ne!(idx.functions()[1].context, caller_context);
    }

    #[test]
    fn the_comment_above_a_function_is_found_and_nothing_else() {
        let text = "int x; /* trailing */\n\n/*\n * Called with d->lock held.\n */\nstatic void f(void)\n{\n}\n// one\n// two\nint g(void) { return 0; }\nint y;\nint h(void) { return 1; }\n";
        let f = text.find("static void f").unwrap();
        assert_eq!(
            leading_comment(text, f).map(|b| &text[b..f]),
            Some("/*\n * Called with d->lock held.\n */\n")
        );
        let g = text.find("int g").unwrap();
        assert_eq!(
            leading_comment(text, g).map(|b| &text[b..g]),
            Some("// one\n// two\n")
        );
        assert_eq!(leading_comment(text, text.find("int h").unwrap()), None);
        let trailing = "int x; /* trailing */\nint k(void) { return 2; }\n";
        assert_eq!(
            leading_comment(trailing, trailing.find("int k").unwrap()),
            None
        );
        let far = "/* far */\n\n\n\nint m(void) { return 3; }\n";
        assert_eq!(leading_comment(far, far.find("int m").unwrap()), None);
    }
}
