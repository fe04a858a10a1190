//! Findings: what a rule reports, in plain data (byte offsets, rule ids), with no knowledge of LSP.

use std::fmt::Write as _;

/// A half-open range of byte offsets into a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    pub start: usize,
    pub end: usize,
}

impl ByteRange {
    pub fn new(start: usize, end: usize) -> Self {
        ByteRange { start, end }
    }

    pub fn of(node: tree_sitter::Node) -> Self {
        ByteRange::new(node.start_byte(), node.end_byte())
    }

    /// True when `offset` lies inside the range; an empty range contains its own start.
    pub fn contains(&self, offset: usize) -> bool {
        (self.start <= offset && offset < self.end)
            || (self.start == self.end && offset == self.start)
    }

    pub fn overlaps(&self, other: ByteRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The range through `f`: its start as a point that begins something, its end as one that
    /// ends something (the two differ where layout between tokens is dropped), an empty range
    /// as one point.
    fn map(self, f: &dyn Fn(usize, Edge) -> usize) -> Self {
        let start = f(self.start, Edge::Start);
        if self.start == self.end {
            return ByteRange::new(start, start);
        }
        ByteRange::new(start, f(self.end, Edge::End).max(start))
    }
}

/// Which side of a text an offset bounds, for maps that drop text between tokens: an end offset
/// belongs to the token before it, a start (or a point) to the token after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// How serious a finding is; the names follow LSP and SARIF so that every output can map them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Hint,
    Information,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Hint => "hint",
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Where a finding came from: a deterministic rule, or the local model (issue 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Rule,
    Model,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Rule => "rule",
            Origin::Model => "model",
        }
    }
}

/// One piece of a message: plain text, or "the line number of this byte offset".
///
/// Line numbers are kept as offsets so that a cached finding can be moved with its function and
/// still name the right line when it is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    LineOf(usize),
}

/// A message whose line references are resolved only when it is rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pieces: Vec<Piece>,
}

impl Message {
    pub fn new() -> Self {
        Message::default()
    }

    /// Appends plain text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.pieces.push(Piece::Text(text.into()));
        self
    }

    /// Appends "line N", where N is the 1-based line of `offset` when the message is rendered.
    pub fn line_of(mut self, offset: usize) -> Self {
        self.pieces.push(Piece::Text("line ".to_owned()));
        self.pieces.push(Piece::LineOf(offset));
        self
    }

    /// Renders the message; `line_of` maps a byte offset to its 0-based line.
    pub fn render(&self, line_of: &dyn Fn(usize) -> usize) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::LineOf(offset) => {
                    let _ = write!(out, "{}", line_of(*offset) + 1);
                }
            }
        }
        out
    }

    /// The message with every line number left out ("line #"): what stays the same when code
    /// above moves.
    pub fn skeleton(&self) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::LineOf(_) => out.push('#'),
            }
        }
        out
    }

    fn map(&mut self, f: &dyn Fn(usize, Edge) -> usize) {
        for piece in &mut self.pieces {
            if let Piece::LineOf(offset) = piece {
                *offset = f(*offset, Edge::Start);
            }
        }
    }
}

/// A location that is part of a finding's evidence chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    pub range: ByteRange,
    pub message: Message,
}

/// One replacement of a byte range by new text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub range: ByteRange,
    pub text: String,
}

/// A fix that has been checked: it re-parses and makes its finding go away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub title: String,
    pub edits: Vec<Edit>,
    /// True for mechanical fixes from a deterministic rule; a model-written fix never is.
    pub preferred: bool,
}

/// One diagnostic of the analysis core.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub origin: Origin,
    pub confidence: f32,
    pub range: ByteRange,
    pub message: Message,
    pub related: Vec<Related>,
    /// Verified fixes, best first; empty unless fixes were asked for.
    pub fixes: Vec<Fix>,
}

impl Finding {
    /// Moves every offset of the finding (range, evidence, line references, fixes) through `f`.
    pub fn map_offsets(&mut self, f: &dyn Fn(usize, Edge) -> usize) {
        self.range = self.range.map(f);
        self.message.map(f);
        for related in &mut self.related {
            related.range = related.range.map(f);
            related.message.map(f);
        }
        for fix in &mut self.fixes {
            for edit in &mut fix.edits {
                edit.range = edit.range.map(f);
            }
        }
    }
}
