//! Entry points for the fuzz targets (`fuzz/`, run with `cargo fuzz`) and for the bounded fuzz loop
//! that CI runs (`tests/fuzz.rs`). Each takes arbitrary bytes and checks what must hold for any
//! input; a panic is a finding.

use crate::analysis::{check_text, dialect, functions, syntax, CheckOptions};

/// The LSP framing proxy: see `server::fuzz_framing`.
pub fn framing(data: &[u8]) {
    crate::server::fuzz_framing(data);
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The kernel dialect masking: same length, and every byte it does not mask left in place.
pub fn dialect(data: &[u8]) {
    let text = text(data);
    let masked = dialect::mask(&text);
    assert_eq!(masked.len(), text.len());
    for (a, b) in text.bytes().zip(masked.bytes()) {
        assert!(
            a == b || (a.is_ascii() && b.is_ascii()),
            "only ASCII is masked"
        );
    }
    assert_eq!(syntax::lone_cr_as_lf(&masked).len(), text.len());
}

/// Parsing and every rule, fixes verified, on arbitrary text: findings and fixes lie in the text
/// on character boundaries.
pub fn check(data: &[u8]) {
    let text = text(data);
    let in_text = |start: usize, end: usize| {
        start <= end
            && end <= text.len()
            && text.is_char_boundary(start)
            && text.is_char_boundary(end)
    };
    if !functions::may_define_functions(&text) {
        let parse = syntax::parse(&text, None);
        assert!(
            functions::function_nodes(&parse.tree).is_empty(),
            "a function where no brace that may open a body was seen"
        );
    }
    for finding in check_text(&text, CheckOptions { fixes: true }) {
        assert!(
            in_text(finding.range.start, finding.range.end),
            "{finding:?}"
        );
        for related in &finding.related {
            assert!(
                in_text(related.range.start, related.range.end),
                "{finding:?}"
            );
        }
        for fix in &finding.fixes {
            for edit in &fix.edits {
                assert!(in_text(edit.range.start, edit.range.end), "{finding:?}");
            }
        }
    }
}

/// The GGUF header reader: an error or a header, never a panic or a huge allocation.
pub fn gguf(data: &[u8]) {
    if let Ok(header) = crate::model::gguf::read(data) {
        let _ = header.check_sizes(data.len() as u64);
        let _ = header.quantization();
        let _ = header.parameters();
    }
}
