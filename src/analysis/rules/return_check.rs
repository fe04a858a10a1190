//! return-check: a C library call's failure result thrown away where the failure leaves the
//! data unset, or tested against a value the call never returns on failure.

use super::{replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Severity};
use crate::analysis::syntax::Fields as _;
use crate::analysis::syntax::{self, strip_parens};

pub const RULE: Rule = Rule {
    id: "return-check",
    severity: Severity::Warning,
    confidence: 0.9,
    summary: "The result of fgets(), fread(), fscanf() and the like is ignored, or a C library \
              call's result is tested against a value that does not mean it failed.",
    why: "fgets(), fread(), fscanf() and getline() leave the buffer unset when they fail, and the \
          C library marks them warn_unused_result. Each library call has one failure value: \
          NULL for fgets() and fopen(), EOF (negative) for fputs(), fputc() and puts(), a \
          negative count for fprintf() and snprintf(), non-zero for remove(), rename() and \
          fclose(); fread() and fwrite() return a size_t. A test against another value is never \
          true, or is true when the call succeeded, so the failure goes unnoticed.",
    how_to_fix:
        "Test the result against the call's failure value: `if (fgets(buf, n, f) == NULL)`, \
                 `if (fputs(s, f) == EOF)`, `if (fprintf(f, ...) < 0)`, `if (remove(path) != 0)`.",
    query: include_str!("../../../queries/c/return-check.scm"),
    check,
};

/// How a library call says it failed.
#[derive(Clone, Copy, PartialEq)]
enum Failure {
    /// Returns a pointer, NULL on failure.
    Null,
    /// Returns a `size_t` count, short on failure.
    ShortCount,
    /// Returns EOF (negative) on failure, something non-negative (often 0) on success.
    Eof,
    /// Returns a negative value on failure, a count (0 included) on success.
    Negative,
    /// Returns 0 on success and non-zero on failure.
    NonZero,
}

fn failure(name: &str) -> Option<Failure> {
    Some(match name {
        "fgets" | "fgetws" | "fopen" | "fdopen" | "tmpfile" => Failure::Null,
        "fread" | "fwrite" => Failure::ShortCount,
        "fputs" | "fputc" | "putc" | "puts" | "putchar" | "fputws" | "fputwc" | "putwc" => {
            Failure::Eof
        }
        "fprintf" | "printf" | "vfprintf" | "vprintf" | "snprintf" | "vsnprintf" => {
            Failure::Negative
        }
        "remove" | "rename" | "fclose" | "fflush" => Failure::NonZero,
        _ => return None,
    })
}

/// The test that does mean failure, written after the call.
fn right_test(failure: Failure) -> Option<&'static str> {
    match failure {
        Failure::Null => Some(" == NULL"),
        Failure::Eof => Some(" == EOF"),
        Failure::Negative => Some(" < 0"),
        Failure::NonZero => Some(" != 0"),
        Failure::ShortCount => None,
    }
}

/// True when the branch an `if` takes on `condition` handles a failure: it says so in a string
/// ("fputs failed!", "cannot remove"), or exits, aborts or reports `errno`.
fn handles_failure(ctx: &Context, condition: tree_sitter::Node) -> bool {
    let Some(statement) =
        syntax::parent_outside_parens(condition).filter(|p| p.kind_name() == "if_statement")
    else {
        return false;
    };
    let Some(branch) = statement.field("consequence") else {
        return false;
    };
    syntax::any_node(branch, |node| match node.kind_name() {
        "string_literal" => {
            let said = ctx.text(node).to_lowercase();
            ["fail", "error", "cannot", "can't", "could not", "unable"]
                .iter()
                .any(|w| said.contains(w))
                .then_some(true)
        }
        "call_expression" => matches!(
            syntax::callee_name(node, ctx.source),
            Some("exit" | "abort" | "perror" | "err" | "errx")
        )
        .then_some(true),
        _ => None,
    })
}

/// What is wrong with comparing `name()`'s result with 0 by `operator`, if anything:
/// `fgets(...) < 0` and `fwrite(...) < 0` are never true; `fputs(...) == 0` and
/// `remove(...) == 0` are wrong where the branch handles a failure (`handles_failure`).
fn misread(
    name: &str,
    failure: Failure,
    operator: &str,
    handles_failure: impl Fn() -> bool,
) -> Option<String> {
    let never = "`< 0` is never true, so a failure goes unnoticed";
    Some(match (failure, operator) {
        (Failure::Null, "<") => {
            format!("{name}() returns a pointer, NULL when it fails; {never}")
        }
        (Failure::ShortCount, "<") => {
            format!("{name}() returns a count of type size_t, never negative; {never}")
        }
        (Failure::Eof | Failure::Negative, "==") if handles_failure() => {
            let value = if failure == Failure::Eof {
                "EOF"
            } else {
                "a negative value"
            };
            format!(
                "{name}() returns {value} when it fails and may return 0 when it succeeds; this \
                 branch handles a failure that `== 0` does not test"
            )
        }
        (Failure::NonZero, "==") if handles_failure() => format!(
            "{name}() returns 0 when it succeeds; this branch handles a failure, but `== 0` takes \
             it on success"
        ),
        _ => return None,
    })
}

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in &ctx.matches {
        let (Some(call), Some(name)) = (m.get("call"), m.get("fn")) else {
            continue;
        };
        let name = ctx.text(name);
        if m.get("discarded").is_some() {
            out.push(Candidate {
                severity: None,
                range: ByteRange::of(call),
                message: Message::new().text(format!(
                    "the result of {name}() is ignored: when it fails (end of input, a read \
                     error) the buffer it was given holds nothing new, and nothing here can tell"
                )),
                related: Vec::new(),
                fixes: Vec::new(),
            });
            continue;
        }
        let (Some(compare), Some(constant), Some(failure)) =
            (m.get("compare"), m.get("constant"), failure(name))
        else {
            continue;
        };
        let operator = compare
            .child_by_field_name("operator")
            .map_or("", |o| ctx.text(o));
        let zero = matches!(ctx.text(strip_parens(constant)), "0" | "0L" | "0UL" | "0U");
        if !zero {
            continue;
        }
        let Some(what) = misread(name, failure, operator, || handles_failure(ctx, compare)) else {
            continue;
        };
        let fixes = right_test(failure)
            .map(|test| {
                replace(
                    ByteRange::of(compare),
                    format!("{}{test}", ctx.text(call)),
                    format!("Test for {name}()'s failure value:{test}"),
                )
            })
            .into_iter()
            .collect();
        out.push(Candidate {
            severity: None,
            range: ByteRange::of(compare),
            message: Message::new().text(what),
            related: Vec::new(),
            fixes,
        });
    }
    out
}
