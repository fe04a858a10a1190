//! An open document: its rope, its syntax tree (reparsed incrementally) and its functions.

use std::borrow::Cow;

use ropey::Rope;
use tower_lsp::lsp_types::TextDocumentContentChangeEvent;
use tree_sitter::{InputEdit, Point, Tree};

use super::line_index::{self, Encoding};
use crate::analysis::functions::{FunctionIndex, TextSource};
use crate::analysis::{syntax, ByteRange};

/// A rope seen as text for the analysis core.
pub struct RopeText<'a>(pub &'a Rope);

impl TextSource for RopeText<'_> {
    fn slice(&self, range: ByteRange) -> Cow<'_, str> {
        match self.0.get_byte_slice(range.start..range.end) {
            Some(slice) => Cow::Owned(slice.to_string()),
            None => Cow::Borrowed(""),
        }
    }
}

pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub tree: Tree,
    pub functions: FunctionIndex,
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
            &chunk.as_bytes()[offset - chunk_start..]
        },
        old,
    )
}

impl Document {
    pub fn new(text: &str, version: i32) -> Document {
        let rope = Rope::from_str(text);
        let tree = parse_rope(&rope, None);
        let functions = FunctionIndex::build(&tree, &RopeText(&rope));
        Document { rope, version, tree, functions }
    }

    /// Applies LSP content changes in order, reparses incrementally and returns the indices of
    /// functions whose normalized text changed.
    pub fn apply(&mut self, changes: &[TextDocumentContentChangeEvent], version: i32, encoding: Encoding) -> Vec<usize> {
        self.version = version;
        let mut edits = Vec::with_capacity(changes.len());
        for change in changes {
            let Some(range) = change.range else {
                *self = Document::new(&change.text, version);
                edits.clear();
                return (0..self.functions.functions().len()).collect();
            };
            let range = line_index::byte_range(&self.rope, range, encoding);
            let start_position = point(&self.rope, range.start);
            let old_end_position = point(&self.rope, range.end);
            let start_char = self.rope.byte_to_char(range.start);
            let end_char = self.rope.byte_to_char(range.end);
            self.rope.remove(start_char..end_char);
            self.rope.insert(start_char, &change.text);
            let new_end_byte = range.start + change.text.len();
            let edit = InputEdit {
                start_byte: range.start,
                old_end_byte: range.end,
                new_end_byte,
                start_position,
                old_end_position,
                new_end_position: point(&self.rope, new_end_byte),
            };
            self.tree.edit(&edit);
            edits.push(edit);
        }
        self.tree = parse_rope(&self.rope, Some(&self.tree));
        self.functions.update(&self.tree, &RopeText(&self.rope), &edits)
    }
}
