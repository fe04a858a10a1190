//! assignment-in-condition: `if (x = y)` where a comparison was meant.

use super::{replace, Candidate, Context, Rule};
use crate::analysis::finding::{ByteRange, Message, Severity};
use crate::analysis::syntax::strip_parens;
use crate::analysis::syntax::Fields as _;

pub const RULE: Rule = Rule {
    id: "assignment-in-condition",
    severity: Severity::Warning,
    confidence: 0.85,
    summary: "A condition assigns (`if (x = 0)`) where a comparison (`==`) was probably meant.",
    why: "The assignment overwrites the variable and the condition then tests the assigned value, \
          so the branch is decided by a constant or by the other variable, not by the comparison. \
          Assignments of a call's result (`if (p = f())`) are left alone; extra parentheses \
          (`if ((x = y))`) mark an intended assignment and are not reported.",
    how_to_fix: "Write `==` to compare, or assign on the line before and test the variable.",
    query: include_str!("../../../queries/c/assignment-in-condition.scm"),
    check,
};

fn check(ctx: &Context) -> Vec<Candidate> {
    let mut out = Vec::new();
    for m in &ctx.matches {
        let Some(assign) = m.get("assign") else {
            continue;
        };
        let (Some(left), Some(right), Some(operator)) = (
            assign.field("left"),
            assign.field("right"),
            assign.field("operator"),
        ) else {
            continue;
        };
        if matches!(
            strip_parens(right).kind_name(),
            "call_expression" | "assignment_expression"
        ) {
            continue;
        }
        let (l, r) = (ctx.text(left), ctx.text(right));
        out.push(Candidate {
 severity: None,
            range: ByteRange::of(assign),
            message: Message::new().text(format!(
                "`{l} = {r}` assigns inside the condition, so the test is decided by `{r}`; to compare, write `{l} == {r}`"
            )),
            related: Vec::new(),
            fixes: vec![replace(ByteRange::of(operator), "==", "Compare with `==`")],
        });
    }
    out
}
