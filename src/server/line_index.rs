//! LSP positions and byte offsets into a rope. This is the only module that knows about UTF-16.
//!
//! Positions are clamped, never rejected: a column past the end of a line means the end of that
//! line, a line past the end of the file means the end of the file (as helix does).

use ropey::Rope;
use tower_lsp::lsp_types::{Position, PositionEncodingKind, Range};

use crate::analysis::ByteRange;

/// The unit of `Position.character`, agreed with the client in `initialize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encoding {
    Utf8,
    #[default]
    Utf16,
}

impl Encoding {
    /// UTF-8 when the client offers it, UTF-16 (the LSP default) otherwise.
    pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Encoding {
        match offered {
            Some(kinds) if kinds.contains(&PositionEncodingKind::UTF8) => Encoding::Utf8,
            _ => Encoding::Utf16,
        }
    }

    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Encoding::Utf8 => PositionEncodingKind::UTF8,
            Encoding::Utf16 => PositionEncodingKind::UTF16,
        }
    }
}

/// The number of chars of a line without its line break.
fn content_chars(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let mut len = slice.len_chars();
    while len > 0 && matches!(slice.char(len - 1), '\n' | '\r') {
        len -= 1;
    }
    len
}

/// The byte offset of an LSP position, clamped to the text.
pub fn offset(rope: &Rope, position: Position, encoding: Encoding) -> usize {
    let line = position.line as usize;
    if line >= rope.len_lines() {
        return rope.len_bytes();
    }
    let line_start = rope.line_to_char(line);
    let chars = content_chars(rope, line);
    let slice = rope.line(line).slice(..chars);
    let column = position.character as usize;
    let char_in_line = match encoding {
        Encoding::Utf16 => slice.utf16_cu_to_char(column.min(slice.len_utf16_cu())),
        Encoding::Utf8 => slice.byte_to_char(column.min(slice.len_bytes())),
    };
    rope.char_to_byte(line_start + char_in_line)
}

/// The LSP position of a byte offset (clamped to the text).
pub fn position(rope: &Rope, offset: usize, encoding: Encoding) -> Position {
    let offset = offset.min(rope.len_bytes());
    let line = rope.byte_to_line(offset);
    let line_start_byte = rope.line_to_byte(line);
    let character = match encoding {
        Encoding::Utf8 => {
            // Round down to a character boundary.
            let char_index = rope.byte_to_char(offset);
            rope.char_to_byte(char_index) - line_start_byte
        }
        Encoding::Utf16 => {
            let char_index = rope.byte_to_char(offset);
            rope.char_to_utf16_cu(char_index) - rope.char_to_utf16_cu(rope.line_to_char(line))
        }
    };
    Position::new(line as u32, character as u32)
}

pub fn range(rope: &Rope, range: ByteRange, encoding: Encoding) -> Range {
    Range::new(
        position(rope, range.start, encoding),
        position(rope, range.end, encoding),
    )
}

pub fn byte_range(rope: &Rope, range: Range, encoding: Encoding) -> ByteRange {
    let start = offset(rope, range.start, encoding);
    let end = offset(rope, range.end, encoding).max(start);
    ByteRange::new(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_count_surrogate_pairs_twice() {
        let rope = Rope::from_str("a😀b\nx");
        // "b" is at UTF-16 column 3 (the emoji takes two code units) and byte 5.
        assert_eq!(offset(&rope, Position::new(0, 3), Encoding::Utf16), 5);
        assert_eq!(offset(&rope, Position::new(0, 5), Encoding::Utf8), 5);
        assert_eq!(position(&rope, 5, Encoding::Utf16), Position::new(0, 3));
        assert_eq!(position(&rope, 5, Encoding::Utf8), Position::new(0, 5));
    }

    #[test]
    fn positions_past_the_end_are_clamped() {
        let rope = Rope::from_str("ab\r\ncd");
        assert_eq!(offset(&rope, Position::new(0, 99), Encoding::Utf16), 2);
        assert_eq!(offset(&rope, Position::new(7, 0), Encoding::Utf16), 6);
        assert_eq!(offset(&rope, Position::new(1, 1), Encoding::Utf8), 5);
        assert_eq!(position(&rope, 999, Encoding::Utf16), Position::new(1, 2));
    }
}
