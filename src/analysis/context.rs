//! What a reviewer reads besides a function before judging a finding in it: the lines of the
//! same file that call the function, the code of the same-file functions it calls where the
//! finding is, and the other functions of the file that release the lock a finding names. The
//! model issue asks for this context in the verdict prompt ("the facts that decide it are not in
//! the prompt"); this module only gathers text, and knows nothing of models.

use tree_sitter::{Node, Tree};

use super::functions::{Function, FunctionIndex};
use super::{summary, syntax};
use crate::analysis::syntax::Fields as _;

/// The most bytes of context given for one finding.
pub const MAX_BYTES: usize = 2400;
/// The most lines of one snippet (a callee longer than this shows its first line and the lines
/// that release or free).
const MAX_SNIPPET_LINES: usize = 24;
/// The most snippets of each kind.
const MAX_EACH: usize = 3;

/// Call names that release a lock or free or put an object: the lines of a long callee a reader
/// looks at.
fn releases(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("unlock")
        || n.contains("free")
        || n.contains("put")
        || n.contains("release")
        || n.contains("destroy")
        || matches!(n.as_str(), "up" | "up_read" | "up_write" | "complete")
}

/// The context for a finding in `function`, as Markdown: `lines` are the 0-based file lines the
/// finding points at (its own line and its evidence); `subject` is the expression it is about
/// (`&desc->iuspin`, `buf`), when it names one. Empty when the file has nothing to add.
pub fn for_finding(
    tree: &Tree,
    source: &str,
    index: &FunctionIndex,
    function: &Function,
    lines: &[usize],
    subject: Option<&str>,
    lock: bool,
) -> String {
    let lines_index = syntax::LineIndex::new(source);
    let mut calls = Vec::new();
    collect_calls(tree.root_node(), &mut calls);
    let defined = |name: &str| {
        index
            .functions()
            .iter()
            .find(|f| f.name == name && f.name != function.name)
    };
    let inside =
        |n: &Node| n.start_byte() >= function.range.start && n.end_byte() <= function.range.end;
    let (base, member) = subject.map(subject_parts).unwrap_or_default();
    let mut out = String::new();

    // Callers in this file: for a lock, the caller's lines that take or release it and the
    // calls after this one that release or put something; else the call and three lines above.
    let mut shown: Vec<&str> = Vec::new();
    for call in calls.iter().filter(|c| !inside(c)) {
        if shown.len() == MAX_EACH {
            break;
        }
        if syntax::callee_name(*call, source) != Some(function.name.as_str()) {
            continue;
        }
        let Some(caller) = index.at(call.start_byte()) else {
            continue;
        };
        if shown.contains(&caller.name.as_str()) {
            continue;
        }
        let line = lines_index.line(call.start_byte());
        let snippet = if lock {
            let mut picked = vec![line];
            let mut after = 0;
            for other in calls.iter().filter(|c| {
                c.start_byte() >= caller.range.start && c.end_byte() <= caller.range.end
            }) {
                let Some(name) = syntax::callee_name(*other, source) else {
                    continue;
                };
                let at = lines_index.line(other.start_byte());
                let on_lock = syntax::call_arguments(*other)
                    .first()
                    .is_some_and(|a| ends_with_member(syntax::text(*a, source), &member));
                if on_lock && (releases(name) || summary::takes_lock(name)) {
                    picked.push(at);
                } else if at > line && after < 2 && releases(name) {
                    picked.push(at);
                    after += 1;
                }
            }
            picked.sort_unstable();
            picked.dedup();
            picked.truncate(8);
            pick_lines(source, &lines_index, &picked)
        } else {
            let first = line
                .saturating_sub(3)
                .max(lines_index.line(caller.range.start));
            line_span(source, &lines_index, first, line + 1)
        };
        push(
            &mut out,
            &format!("`{}()` in this file calls it:", caller.name),
            &snippet,
        );
        shown.push(&caller.name);
    }

    // Same-file callees where the finding is, then those given the finding's object.
    let mut callees: Vec<&Function> = Vec::new();
    let on_lines = |c: &Node| lines.contains(&lines_index.line(c.start_byte()));
    let given_subject = |c: &Node| {
        !base.is_empty()
            && syntax::call_arguments(*c)
                .iter()
                .any(|a| mentions(syntax::text(*a, source), &base))
    };
    for pick in [&on_lines as &dyn Fn(&Node) -> bool, &given_subject] {
        for call in calls.iter().filter(|c| inside(c) && pick(c)) {
            if let Some(callee) = syntax::callee_name(*call, source).and_then(defined) {
                if callees.len() < MAX_EACH && !callees.iter().any(|f| f.name == callee.name) {
                    callees.push(callee);
                }
            }
        }
    }
    for callee in callees {
        let code = &source[callee.range.start..callee.range.end];
        // A long callee with nothing that releases, frees or names the object says nothing.
        if let Some(code) = shorten(code, &member) {
            push(
                &mut out,
                &format!("`{}()`, which it calls, in this file:", callee.name),
                &code,
            );
        }
    }

    // For a lock: the other functions of the file that release it by the same member name and
    // never take it (the put half of a get/put pair).
    if lock && !member.is_empty() {
        let on_lock = |c: &Node| {
            syntax::call_arguments(*c)
                .first()
                .is_some_and(|a| ends_with_member(syntax::text(*a, source), &member))
        };
        let mut shown = 0;
        for owner in index.functions().iter().filter(|f| f.name != function.name) {
            if shown == 2 {
                break;
            }
            let mine: Vec<&Node> = calls
                .iter()
                .filter(|c| c.start_byte() >= owner.range.start && c.end_byte() <= owner.range.end)
                .filter(|c| on_lock(c))
                .collect();
            let name_of = |c: &Node| syntax::callee_name(*c, source).unwrap_or("");
            let release = mine.iter().find(|c| releases(name_of(c)));
            if let Some(release) =
                release.filter(|_| !mine.iter().any(|c| summary::takes_lock(name_of(c))))
            {
                let line = lines_index.line(release.start_byte());
                push(
                    &mut out,
                    &format!(
                        "`{}()` in this file releases `{member}` without taking it:",
                        owner.name
                    ),
                    &line_span(source, &lines_index, line, line + 1),
                );
                shown += 1;
            }
        }
    }
    out
}

/// Appends a titled snippet if it fits the budget.
fn push(out: &mut String, title: &str, snippet: &str) {
    let piece = format!("{title}\n```c\n{}\n```\n", snippet.trim_end());
    if out.len() + piece.len() <= MAX_BYTES {
        out.push_str(&piece);
    }
}

fn collect_calls<'t>(root: Node<'t>, out: &mut Vec<Node<'t>>) {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.kind_name() == "call_expression" {
            out.push(node);
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    out.sort_by_key(|n| n.start_byte());
}

/// Lines `first..end` (0-based, end excluded) of `source`, with their common indentation removed.
fn line_span(source: &str, lines: &syntax::LineIndex, first: usize, end: usize) -> String {
    let start = lines.line_start(first);
    let stop = if end > lines.line(source.len()) {
        source.len()
    } else {
        lines.line_start(end)
    };
    dedent(source.get(start..stop).unwrap_or(""))
}

fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 0-based `lines` of `source` (sorted), dedented, with `...` where lines are skipped.
fn pick_lines(source: &str, index: &syntax::LineIndex, lines: &[usize]) -> String {
    let mut out = Vec::new();
    for (i, &line) in lines.iter().enumerate() {
        if i > 0 && line > lines[i - 1] + 1 {
            out.push("...".to_owned());
        }
        out.push(line_span(source, index, line, line + 1));
    }
    let text = out.join("\n");
    dedent(&text)
}

/// A callee's code, whole when short; else its first line, then the lines that release, free or
/// name `member`, with `...` between; `None` when it has no such line.
fn shorten(code: &str, member: &str) -> Option<String> {
    let lines: Vec<&str> = code.lines().collect();
    if lines.len() <= MAX_SNIPPET_LINES {
        return Some(code.to_owned());
    }
    let mut out = vec![lines[0]];
    let mut last = 0;
    for (i, line) in lines.iter().enumerate().skip(1) {
        let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        let wanted = words
            .clone()
            .any(|w| !w.is_empty() && releases(w) && line.contains('('))
            || (!member.is_empty() && words.clone().any(|w| w == member));
        if wanted {
            if i > last + 1 {
                out.push("\t...");
            }
            out.push(line);
            last = i;
        }
        if out.len() >= MAX_SNIPPET_LINES {
            break;
        }
    }
    if out.len() == 1 {
        return None;
    }
    if last + 1 < lines.len() {
        out.push("\t...");
        out.extend(lines.last());
    }
    Some(out.join("\n"))
}

/// `&desc->iuspin` gives (`desc`, `iuspin`); `buf` gives (`buf`, `buf`).
fn subject_parts(subject: &str) -> (String, String) {
    let ident = |s: &str| {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty() && !w.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let words = ident(subject);
    match (words.first(), words.last()) {
        (Some(first), Some(last)) => (first.clone(), last.clone()),
        _ => Default::default(),
    }
}

/// Whether `text` names the identifier `name` as a word.
fn mentions(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

/// Whether the expression `text` ends with the member `member` (`&priv->lock` ends with `lock`).
fn ends_with_member(text: &str, member: &str) -> bool {
    let text = text.trim_end_matches([')', ' ']);
    text.strip_suffix(member).is_some_and(|rest| {
        rest.ends_with("->") || rest.ends_with('.') || rest.ends_with(&['&', '('][..])
    })
}

/// The expression a finding's message is about: its first `quoted` span.
pub fn subject(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::functions::FunctionIndex;

    const FILE: &str = "\
static void put_mdio(struct dev *dev)
{
\tmutex_unlock(&dev->lock);
}

static int get_mdio(struct dev *dev)
{
\tmutex_lock(&dev->lock);
\tif (dev->bad)
\t\treturn -EIO;
\treturn 0;
}

static int drop_req(struct dev *dev, void *req)
{
\tkfree(req);
\treturn 0;
}

static int read_reg(struct dev *dev, void *req)
{
\tint err;

\tif (get_mdio(dev))
\t\treturn -EIO;
\terr = drop_req(dev, req);
\tput_mdio(dev);
\treturn err;
}
";

    fn context_of(name: &str, lines: &[usize], subject: Option<&str>, lock: bool) -> String {
        let parse = syntax::parse(FILE, None);
        let index = FunctionIndex::build(&parse.tree, FILE);
        let function = index
            .functions()
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .clone();
        for_finding(&parse.tree, FILE, &index, &function, lines, subject, lock)
    }

    #[test]
    fn a_lock_finding_is_shown_its_callers_and_the_function_that_releases_the_lock() {
        let text = context_of("get_mdio", &[9, 7], Some("&dev->lock"), true);
        assert!(
            text.contains("`read_reg()` in this file calls it:"),
            "{text}"
        );
        assert!(
            text.contains("if (get_mdio(dev))\n...\nput_mdio(dev);"),
            "{text}"
        );
        assert!(
            text.contains("`put_mdio()` in this file releases `lock` without taking it:\n```c\nmutex_unlock(&dev->lock);"),
            "{text}"
        );
        assert!(!text.contains("kfree"), "{text}");
    }

    #[test]
    fn a_callee_given_the_object_is_shown_whole() {
        let text = context_of("read_reg", &[27], Some("req"), false);
        assert!(
            text.contains("`drop_req()`, which it calls, in this file:\n```c\nstatic int drop_req"),
            "{text}"
        );
        assert!(!text.contains("calls it:"), "{text}");
    }

    #[test]
    fn subjects_and_members() {
        assert_eq!(
            subject("`&desc->iuspin` taken by spin_lock_irq()"),
            Some("&desc->iuspin")
        );
        assert_eq!(subject("no quote"), None);
        assert_eq!(
            subject_parts("&desc->iuspin"),
            ("desc".to_owned(), "iuspin".to_owned())
        );
        assert!(ends_with_member("&priv->macsec->lock", "lock"));
        assert!(!ends_with_member("&priv->block", "lock"));
        assert!(releases("spin_unlock_irq") && releases("up") && !releases("mutex_lock"));
    }

    #[test]
    fn a_long_callee_is_cut_to_what_releases() {
        let mut code = String::from("int f(struct dev *d)\n{\n");
        for i in 0..40 {
            code.push_str(&format!("\tx{i} = {i};\n"));
        }
        code.push_str("\tmutex_unlock(&d->lock);\n\treturn 0;\n}\n");
        let short = shorten(&code, "lock").unwrap();
        assert!(
            short.starts_with("int f(struct dev *d)\n\t...\n\tmutex_unlock(&d->lock);"),
            "{short}"
        );
        assert!(short.lines().count() < 10, "{short}");
        assert_eq!(
            shorten(&code.replace("mutex_unlock", "mutex_lock"), "other"),
            None
        );
    }
}
