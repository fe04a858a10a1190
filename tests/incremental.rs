//! Property test: random edit scripts applied to an open document, as the server applies them
//! (incremental reparse, function index update, then the scheduler's settling parse and the
//! finding cache), must leave the same tree, the same functions and the same findings as a fresh
//! parse and check of the final text, after every step.

use aidiag::analysis::cache::FindingCache;
use aidiag::analysis::{check_text, CheckOptions, Finding};
use aidiag::server::document::{parse_fresh, Document};
use aidiag::server::line_index::{self, Encoding};
use proptest::prelude::*;
use tower_lsp::lsp_types::{Range, TextDocumentContentChangeEvent};

/// Kernel-style functions with findings of several rules, and a few that are clean.
const BASE: &str = "\
static int probe(struct device *dev)
{
\tchar *buf = kmalloc(64, GFP_KERNEL);
\tint ret;

\tif (!buf)
\t\treturn -ENOMEM;
\tret = setup(dev, buf);
\tif (ret)
\t\treturn ret;
\tkfree(buf);
\treturn 0;
}

static void update(struct foo *foo, int v)
{
\tmutex_lock(&foo->lock);
\tif (v < 0) {
\t\tmutex_unlock(&foo->lock);
\t\treturn;
\t}
\tif (v > 10)
\t\treturn;
\tfoo->v = v;
\tmutex_unlock(&foo->lock);
}

int release(struct bar *b)
{
\tkfree(b->data);
\tkfree(b->data);
\treturn 0;
}

static int use(struct baz *z)
{
\tstruct item *it = kzalloc(sizeof(*it), GFP_KERNEL);

\tit->next = z->head;
\tz->head = it;
\treturn 0;
}
";

/// Pieces typed into the text: braces and line breaks (which join and split functions), whole
/// functions, statements, comments, a suppression, non-ASCII text and line endings.
const PIECES: &[&str] = &[
    "}",
    "{",
    "\n",
    "\r",
    "\r\n",
    " ",
    "x",
    "é",
    "(",
    ")",
    ";",
    "/*",
    "*/",
    "//",
    "#if 0\n",
    "#endif\n",
    "}\n\nint split(int q)\n{\n",
    "int k(void) { return 0; }\n",
    "\tkfree(buf);\n",
    "\t\treturn -EINVAL;\n",
    "\tmutex_unlock(&foo->lock);\n",
    "/* aidiag-ignore: leak-on-error */\n",
    "if (v) {",
    "list_for_each_entry(pos, head, list) {",
    "void __user *",
];

#[derive(Clone, Debug)]
enum Step {
    /// Replace `len` chars at a position (a fraction of the text) with a piece.
    Replace { at: f64, len: usize, piece: usize },
    /// Delete the n-th brace of the text (any brace, wrapping around).
    DeleteBrace { nth: usize },
    /// Delete from the n-th closing brace to the next opening one: two functions become one.
    Join { nth: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0.0..1.0f64, 0usize..12, 0..PIECES.len())
            .prop_map(|(at, len, piece)| Step::Replace { at, len, piece }),
        2 => (0usize..64).prop_map(|nth| Step::DeleteBrace { nth }),
        1 => (0usize..8).prop_map(|nth| Step::Join { nth }),
    ]
}

/// The byte range a step replaces, and with what; on char boundaries.
fn resolve(text: &str, step: &Step) -> Option<(usize, usize, &'static str)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_of = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    match *step {
        Step::Replace { at, len, piece } => {
            let start = (at * chars.len() as f64) as usize;
            Some((byte_of(start), byte_of(start + len), PIECES[piece]))
        }
        Step::DeleteBrace { nth } => {
            let braces: Vec<usize> = text.match_indices(['{', '}']).map(|m| m.0).collect();
            let at = *braces.get(nth % braces.len().max(1))?;
            Some((at, at + 1, ""))
        }
        Step::Join { nth } => {
            let closes: Vec<usize> = text.match_indices('}').map(|m| m.0).collect();
            let at = *closes.get(nth % closes.len().max(1))?;
            let open = text[at..].find('{')? + at;
            Some((at, open + 1, ""))
        }
    }
}

fn key(findings: &[Finding], text: &str) -> Vec<(String, usize, usize, String)> {
    let lines = aidiag::analysis::syntax::LineIndex::new(text);
    let mut out: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.rule.to_owned(),
                f.range.start,
                f.range.end,
                f.message.render(&|o| lines.line(o)),
            )
        })
        .collect();
    out.sort();
    out
}

/// `steps` with, for each, whether the document is read after it (otherwise its edit waits, with
/// the next ones, for one refresh, as a burst of keystrokes does).
fn run(steps: &[(Step, bool)]) -> Result<(), TestCaseError> {
    let mut doc = Document::new(BASE, 0);
    let cache = FindingCache::new(1_000);
    let mut expected_text = BASE.to_owned();
    for (n, (step, read)) in steps.iter().enumerate() {
        let text = doc.rope.to_string();
        prop_assert_eq!(&text, &expected_text);
        let Some((start, end, piece)) = resolve(&text, step) else {
            continue;
        };
        // LSP positions cannot split a `\r\n`: widen the range over the pair.
        let bytes = text.as_bytes();
        let start = if start > 0 && bytes[start - 1] == b'\r' && bytes.get(start) == Some(&b'\n') {
            start - 1
        } else {
            start
        };
        let end = if end > 0 && end < bytes.len() && bytes[end - 1] == b'\r' && bytes[end] == b'\n'
        {
            end + 1
        } else {
            end
        };
        let rope = &doc.rope;
        let range = Range::new(
            line_index::position(rope, start, Encoding::Utf16),
            line_index::position(rope, end, Encoding::Utf16),
        );
        let change = TextDocumentContentChangeEvent {
            range: Some(range),
            range_length: None,
            text: piece.to_owned(),
        };
        doc.apply(&[change], n as i32 + 1, Encoding::Utf16);
        expected_text = format!("{}{piece}{}", &text[..start], &text[end..]);
        if !read && n + 1 < steps.len() {
            continue;
        }
        doc.refresh();
        let text = doc.rope.to_string();
        prop_assert_eq!(&text, &expected_text);
        // What the scheduler does before it checks.
        if let Some((masked, rope)) = doc.unsettled() {
            let (tree, functions) = parse_fresh(&masked, &rope);
            doc.settle(tree, functions);
        }
        let fresh = Document::new(&text, 0);
        prop_assert_eq!(
            doc.tree.root_node().to_sexp(),
            fresh.tree.root_node().to_sexp(),
            "tree after step {}: {:?}",
            n,
            step
        );
        let functions = |d: &Document| -> Vec<(String, usize, usize, u64)> {
            d.functions
                .functions()
                .iter()
                .map(|f| (f.name.clone(), f.range.start, f.range.end, f.hash))
                .collect()
        };
        prop_assert_eq!(
            functions(&doc),
            functions(&fresh),
            "functions after step {}",
            n
        );
        let served: Vec<Finding> = doc
            .functions
            .functions()
            .iter()
            .flat_map(|f| cache.findings(f, &doc.tree, &text))
            .collect();
        let checked = check_text(&text, CheckOptions::default());
        prop_assert_eq!(
            key(&served, &text),
            key(&checked, &text),
            "findings after step {}",
            n
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn edits_leave_what_a_fresh_parse_and_check_give(steps in prop::collection::vec((step(), any::<bool>()), 1..8)) {
        run(&steps)?;
    }
}

/// Found by the property test in CI: a function pasted after the last one, a split, then the
/// brace that closed `use` deleted.
#[test]
fn a_deleted_brace_after_pasted_functions() {
    let steps = [
        (
            Step::Replace {
                at: 0.9951764235008929,
                len: 0,
                piece: 18,
            },
            false,
        ),
        (
            Step::Replace {
                at: 0.86611716081384,
                len: 0,
                piece: 18,
            },
            false,
        ),
        (
            Step::Replace {
                at: 0.28817669148872954,
                len: 2,
                piece: 2,
            },
            true,
        ),
        (Step::DeleteBrace { nth: 10 }, false),
    ];
    run(&steps).unwrap();
}

/// Found by the property test in a fresh-clone CI run on 2026-11-30: a line break typed between
/// `kfree(b->data)` and its `;` left the cached finding one byte longer than a fresh check's
/// (437..452 against 437..451): the range's end, next to the `;`, was stored as the start of the
/// `;` in normalized text and came back after the new line break.
#[test]
fn a_cached_range_matches_a_fresh_check_after_the_first_function_breaks() {
    run(&[
        (
            Step::Replace {
                at: 0.98153014097134,
                len: 10,
                piece: 19,
            },
            false,
        ),
        (
            Step::Replace {
                at: 0.0,
                len: 1,
                piece: 22,
            },
            true,
        ),
        (
            Step::Replace {
                at: 0.7397273054009691,
                len: 0,
                piece: 2,
            },
            false,
        ),
    ])
    .unwrap();
}
