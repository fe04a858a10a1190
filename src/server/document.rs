//! An open document: its rope, its syntax tree (reparsed incrementally) and its functions.

use std::borrow::Cow;

use ropey::Rope;
use tower_lsp::lsp_types::TextDocumentContentChangeEvent;
use tree_sitter::{InputEdit, Point, Tree};

use super::line_index::{self, Encoding};
use crate::analysis::functions::{self, Function, FunctionIndex, TextSource};
use crate::analysis::{dialect, syntax, ByteRange};

/// The text of a line without its line break.
fn line_text(rope: &Rope, line: usize) -> String {
    let mut text = rope.line(line).to_string();
    while text.ends_with(['\n', '\r']) {
        text.pop();
    }
    text
}

/// A rope seen as text for the analysis core.
pub struct RopeText<'a>(pub &'a Rope);

impl TextSource for RopeText<'_> {
    fn slice(&self, range: ByteRange) -> Cow<'_, str> {
        match self.0.get_byte_slice(range.start..range.end) {
            Some(slice) => Cow::Owned(slice.to_string()),
            None => Cow::Borrowed(""),
        }
    }

    fn line_bounds(&self, offset: usize) -> (usize, usize) {
        let rope = self.0;
        let offset = offset.min(rope.len_bytes());
        let line = rope.byte_to_line(offset);
        let start = rope.line_to_byte(line);
        let text = rope.line(line);
        let mut len = text.len_bytes();
        while len > 0 && matches!(text.byte(len - 1), b'\n' | b'\r') {
            len -= 1;
        }
        (start, start + len)
    }
}

pub struct Document {
    pub rope: Rope,
    /// The same text with the kernel dialect masked (see `analysis::dialect`): what the parser
    /// reads. Same length, same characters at the same offsets except masked ASCII.
    masked: Rope,
    pub version: i32,
    pub tree: Tree,
    pub functions: FunctionIndex,
    /// Hashes of the functions the last change edited: their model work goes first.
    pub edited: Vec<u64>,
    /// Whether `tree` is what a fresh parse of the text gives. An incremental parse reuses
    /// subtrees, and where the text has syntax errors tree-sitter's error recovery can then end
    /// differently from a fresh parse (a deleted `}` can hide a function); the scheduler parses
    /// such a document again from scratch before it checks it (`settle`).
    pub settled: bool,
    /// Counts the changes applied (versions come from the client and need not change).
    pub revision: u64,
    /// Edits applied to the text since the tree was last parsed. A change only edits the ropes
    /// and the tree; parsing and reading the functions wait until something needs them
    /// (`refresh`), so a burst of keystrokes costs one parse, not one per keystroke.
    pending: Vec<InputEdit>,
    /// A full-text change since the last refresh: every function counts as changed.
    replaced: bool,
}

/// A fresh parse of a masked text and the functions it finds in `rope`.
pub fn parse_fresh(masked: &Rope, rope: &Rope) -> (Tree, FunctionIndex) {
    let tree = parse_rope(masked, None);
    let functions = FunctionIndex::build(&tree, &RopeText(rope));
    (tree, functions)
}

/// A tree-sitter point (row, byte column) of an offset.
fn point(rope: &Rope, offset: usize) -> Point {
    let row = rope.byte_to_line(offset);
    Point::new(row, offset - rope.line_to_byte(row))
}

fn parse_rope(rope: &Rope, old: Option<&Tree>) -> Tree {
    syntax::parse_chunks(
        |offset| {
            if offset >= rope.len_bytes() {
                return &[][..];
            }
            let (chunk, chunk_start, _, _) = rope.chunk_at_byte(offset);
            let rest = &chunk.as_bytes()[offset - chunk_start..];
            // A lone `\r` ends a line; the grammar only knows `\n` (see `syntax::is_lone_cr`).
            let lone = |i: usize| {
                rest[i] == b'\r'
                    && match rest.get(i + 1) {
                        Some(&next) => next != b'\n',
                        None => {
                            offset + i + 1 >= rope.len_bytes() || rope.byte(offset + i + 1) != b'\n'
                        }
                    }
            };
            match (0..rest.len()).find(|&i| lone(i)) {
                Some(0) => &b"\n"[..],
                Some(cr) => &rest[..cr],
                None => rest,
            }
        },
        old,
    )
}

impl Document {
    pub fn new(text: &str, version: i32) -> Document {
        let rope = Rope::from_str(text);
        let masked = Rope::from_str(&dialect::mask(text));
        let tree = parse_rope(&masked, None);
        let functions = FunctionIndex::build(&tree, &RopeText(&rope));
        Document {
            rope,
            masked,
            version,
            tree,
            functions,
            edited: Vec::new(),
            settled: true,
            revision: 0,
            pending: Vec::new(),
            replaced: false,
        }
    }

    /// The ropes a fresh parse needs, when the tree may differ from one: after incremental
    /// parses of a text with syntax errors.
    pub fn unsettled(&self) -> Option<(Rope, Rope)> {
        (!self.settled && self.tree.root_node().has_error())
            .then(|| (self.masked.clone(), self.rope.clone()))
    }

    /// Parses the text again from scratch (the tree and functions a fresh open would have).
    pub fn reparse(&mut self) {
        let (tree, functions) = parse_fresh(&self.masked, &self.rope);
        self.settle(tree, functions);
    }

    /// Takes the result of `parse_fresh` for the current version.
    pub fn settle(&mut self, tree: Tree, functions: FunctionIndex) {
        self.tree = tree;
        self.functions = functions;
        self.settled = true;
    }

    /// The last significant byte before `line`, the context that masking a line depends on.
    fn context_before(&self, line: usize) -> Option<u8> {
        (0..line)
            .rev()
            .find_map(|l| dialect::last_significant(&line_text(&self.rope, l)))
    }

    /// Masks lines `first..=last` again, and the lines after them whose context may have changed
    /// (up to and including the first non-blank one).
    fn remask(&mut self, first: usize, last: usize) {
        let mut before = self.context_before(first);
        for line in first..self.rope.len_lines() {
            let original = line_text(&self.rope, line);
            let masked = dialect::mask_line(&original, before);
            if masked != line_text(&self.masked, line) {
                let start = self.masked.line_to_char(line);
                self.masked.remove(start..start + masked.chars().count());
                self.masked.insert(start, &masked);
            }
            let significant = dialect::last_significant(&original);
            before = significant.or(before);
            if line > last && significant.is_some() {
                break;
            }
        }
    }

    /// Applies LSP content changes in order to the text. The tree and the functions follow at
    /// the next `refresh`.
    pub fn apply(
        &mut self,
        changes: &[TextDocumentContentChangeEvent],
        version: i32,
        encoding: Encoding,
    ) {
        self.version = version;
        let revision = self.revision + 1;
        for change in changes {
            // A full-text change replaces the document; the changes after it still apply, in
            // order (LSP 3.17: the changes of one didChange describe successive states).
            let Some(range) = change.range else {
                *self = Document::new(&change.text, version);
                self.replaced = true;
                continue;
            };
            let range = line_index::byte_range(&self.rope, range, encoding);
            let start_position = point(&self.rope, range.start);
            let old_end_position = point(&self.rope, range.end);
            let start_char = self.rope.byte_to_char(range.start);
            let end_char = self.rope.byte_to_char(range.end);
            self.rope.remove(start_char..end_char);
            self.rope.insert(start_char, &change.text);
            self.masked.remove(start_char..end_char);
            self.masked.insert(start_char, &change.text);
            let new_end_byte = range.start + change.text.len();
            self.remask(start_position.row, self.rope.byte_to_line(new_end_byte));
            let edit = InputEdit {
                start_byte: range.start,
                old_end_byte: range.end,
                new_end_byte,
                start_position,
                old_end_position,
                new_end_position: point(&self.rope, new_end_byte),
            };
            self.tree.edit(&edit);
            self.pending.push(edit);
        }
        self.revision = revision;
    }

    /// The function at `offset` of the current text, without refreshing: a function of the
    /// last refresh that no pending edit touched, moved to where it is now. `None` inside text
    /// edited since (its findings are not known yet). Hover uses it, so a burst of keystrokes
    /// never makes a hover wait for a parse.
    pub fn function_at(&self, offset: usize) -> Option<Function> {
        let mut old = offset;
        for edit in self.pending.iter().rev() {
            if old >= edit.new_end_byte {
                old = old - edit.new_end_byte + edit.old_end_byte;
            } else if old >= edit.start_byte {
                return None;
            }
        }
        if self.replaced {
            return None;
        }
        let function = self.functions.at(old)?;
        let range = functions::shift(function.range, &self.pending)?;
        Some(function.moved_to(range))
    }

    /// Whether changes wait for `refresh`.
    pub fn is_stale(&self) -> bool {
        self.replaced || !self.pending.is_empty()
    }

    /// Parses what changed since the last refresh (incrementally) and brings the functions up
    /// to date; returns the indices of the functions whose normalized text changed.
    pub fn refresh(&mut self) -> Vec<usize> {
        let replaced = std::mem::take(&mut self.replaced);
        let mut changed = Vec::new();
        if !self.pending.is_empty() {
            let edits = std::mem::take(&mut self.pending);
            self.tree = parse_rope(&self.masked, Some(&self.tree));
            self.settled = false;
            changed = self
                .functions
                .update(&self.tree, &RopeText(&self.rope), &edits);
        }
        if replaced {
            (0..self.functions.functions().len()).collect()
        } else {
            changed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cache::FindingCache;
    use tower_lsp::lsp_types::Range;

    const TEXT: &str = "int f(void)\n{\n\treturn 1;\n}\n\nint g(int x)\n{\n\tif (x < 0)\n\t\treturn -1;\n\treturn x * 2;\n}\n\nint h(void) { return 3; }\n";

    /// Applies changes and refreshes at once, as the server does before it reads the tree.
    fn apply_now(
        doc: &mut Document,
        changes: &[TextDocumentContentChangeEvent],
        version: i32,
        encoding: Encoding,
    ) -> Vec<usize> {
        doc.apply(changes, version, encoding);
        doc.refresh()
    }

    fn change(rope: &Rope, start: usize, end: usize, text: &str) -> TextDocumentContentChangeEvent {
        let range = Range::new(
            line_index::position(rope, start, Encoding::Utf16),
            line_index::position(rope, end, Encoding::Utf16),
        );
        TextDocumentContentChangeEvent {
            range: Some(range),
            range_length: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn functions_are_found_through_edits_not_parsed_yet() {
        let mut doc = Document::new(TEXT, 1);
        let g = TEXT.find("int g").unwrap();
        let before: Vec<_> = doc
            .functions
            .functions()
            .iter()
            .map(|f| (f.hash, f.range))
            .collect();
        // Three characters typed in f, one deleted before h; nothing parsed yet.
        let at = TEXT.find("return 1").unwrap();
        let edit = change(&doc.rope, at, at, "xyz");
        doc.apply(&[edit], 2, Encoding::Utf16);
        assert!(doc.is_stale());
        assert!(doc.function_at(at + 1).is_none(), "f is being edited");
        let moved = doc.function_at(g + 3 + 2).expect("g was not touched");
        assert_eq!(moved.hash, before[1].0);
        assert_eq!(moved.range.start, before[1].1.start + 3);
        assert_eq!(
            &doc.rope.to_string()[moved.range.start..moved.range.start + 5],
            "int g"
        );
        doc.refresh();
        let g_now = &doc.functions.functions()[1];
        assert_eq!((g_now.hash, g_now.range), (moved.hash, moved.range));
    }

    #[test]
    fn changes_after_a_full_text_change_are_applied_in_order() {
        let mut doc = Document::new(TEXT, 1);
        let full = TextDocumentContentChangeEvent {
            range: None,
            range_length: None,
            text: "int f(void)\n{\n\treturn 1;\n}\n".to_owned(),
        };
        let replaced = Rope::from_str(&full.text);
        let at = full.text.find('1').unwrap();
        let edit = change(&replaced, at, at + 1, "42");
        let changed = apply_now(&mut doc, &[full, edit], 2, Encoding::Utf16);
        assert_eq!(doc.rope.to_string(), "int f(void)\n{\n\treturn 42;\n}\n");
        assert_eq!(doc.version, 2);
        assert_eq!(changed, vec![0]);
        let fresh = Document::new(&doc.rope.to_string(), 2);
        assert_eq!(
            doc.tree.root_node().to_sexp(),
            fresh.tree.root_node().to_sexp()
        );
    }

    #[test]
    fn lone_carriage_returns_end_lines_for_the_parser_and_edits_keep_it_so() {
        let lf = "// a comment\n#include <x.h>\nint f(void)\n{\n\treturn 1;\n}\n";
        let cr = lf.replace('\n', "\r");
        let with_lf = Document::new(lf, 1);
        let mut doc = Document::new(&cr, 1);
        assert_eq!(doc.functions.functions().len(), 1);
        assert_eq!(
            doc.tree.root_node().to_sexp(),
            with_lf.tree.root_node().to_sexp()
        );
        // Make one `\r` a `\r\n`, then the `\r\n` a `\r` again: each time as a fresh parse.
        let at = cr.find('\r').unwrap() + 1;
        let edit = change(&doc.rope, at, at, "\n");
        apply_now(&mut doc, &[edit], 2, Encoding::Utf16);
        let fresh = Document::new(&doc.rope.to_string(), 2);
        assert_eq!(
            doc.tree.root_node().to_sexp(),
            fresh.tree.root_node().to_sexp()
        );
        // (LSP positions cannot fall between `\r` and `\n`: replace the pair.)
        let edit = change(&doc.rope, at - 1, at + 1, "\r");
        apply_now(&mut doc, &[edit], 3, Encoding::Utf16);
        assert_eq!(doc.rope.to_string(), cr);
        assert_eq!(
            doc.tree.root_node().to_sexp(),
            with_lf.tree.root_node().to_sexp()
        );
        assert_eq!(doc.functions.functions().len(), 1);
    }

    #[test]
    fn incremental_reparse_matches_a_fresh_parse_after_random_edits() {
        let mut doc = Document::new(TEXT, 1);
        // A fixed linear congruential generator: the same edits on every run.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n.max(1)
        };
        let pieces = [
            "x",
            "\n",
            "}",
            "{",
            " ",
            "int k(void) { return 0; }\n",
            "é",
            "/* c */",
            "",
        ];
        for version in 2..1500 {
            let len = doc.rope.len_chars();
            let a = doc.rope.char_to_byte(next(len + 1));
            let b = doc.rope.char_to_byte(next(len + 1));
            let (start, end) = (a.min(b), a.max(b).min(a.min(b) + 8));
            let piece = pieces[next(pieces.len())];
            let edit = change(&doc.rope, start, end, piece);
            apply_now(&mut doc, &[edit], version, Encoding::Utf16);
            let fresh = Document::new(&doc.rope.to_string(), version);
            assert_eq!(
                doc.tree.root_node().to_sexp(),
                fresh.tree.root_node().to_sexp(),
                "after edit {version}"
            );
            let ours: Vec<_> = doc
                .functions
                .functions()
                .iter()
                .map(|f| (f.range, f.hash))
                .collect();
            let theirs: Vec<_> = fresh
                .functions
                .functions()
                .iter()
                .map(|f| (f.range, f.hash))
                .collect();
            assert_eq!(ours, theirs, "function index after edit {version}");
        }
    }

    #[test]
    fn typing_in_one_function_rechecks_only_that_function() {
        let cache = FindingCache::new(100);
        let mut doc = Document::new(TEXT, 1);
        let check_all = |doc: &Document| {
            let text = doc.rope.to_string();
            for f in doc.functions.functions() {
                cache.findings(f, &doc.tree, &text);
            }
        };
        check_all(&doc);
        assert_eq!(cache.checks(), 3);
        // Change `x * 2` to `x * 3` inside g.
        let at = TEXT.find("x * 2").unwrap() + 4;
        let edit = change(&doc.rope, at, at + 1, "3");
        let changed = apply_now(&mut doc, &[edit], 2, Encoding::Utf16);
        assert_eq!(changed, vec![1]);
        check_all(&doc);
        assert_eq!(cache.checks(), 4, "only g was checked again");
        // A whitespace-only edit inside f changes nothing that needs checking.
        let at = doc.rope.to_string().find("return 1").unwrap();
        let edit = change(&doc.rope, at, at, "  ");
        assert!(apply_now(&mut doc, &[edit], 3, Encoding::Utf16).is_empty());
        check_all(&doc);
        assert_eq!(cache.checks(), 4);
    }
}
