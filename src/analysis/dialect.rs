//! The kernel's C dialect, made parseable. Annotations such as `__user`, `__iomem` or
//! `__acquires(lock)` and iterator macros such as `list_for_each_entry(pos, head, member) { ... }`
//! are not C, so tree-sitter-c turns them into `ERROR` nodes. Those nodes hide statements from the
//! rules and make incremental reparsing slow (subtrees with errors cannot be reused).
//!
//! `mask` rewrites a text into one the grammar accepts, byte for byte the same length, so every
//! offset in the tree still points at the same place in the original text:
//! - annotation words and annotation calls become spaces;
//! - an iterator macro in statement position (`*for_each*(...)` followed by a block, a
//!   statement, or the end of its line) becomes `while` padded with spaces, so its body parses as
//!   a loop body.

use std::borrow::Cow;

/// Annotation words that carry no meaning for the grammar.
const WORDS: &[&str] = &[
    "__user",
    "__kernel",
    "__iomem",
    "__rcu",
    "__percpu",
    "__force",
    "__bitwise",
    "__must_check",
    "__init",
    "__exit",
    "__initdata",
    "__exitdata",
    "__initconst",
    "__read_mostly",
    "__always_inline",
    "__maybe_unused",
    "__always_unused",
    "__cold",
    "__hot",
    "__pure",
    "__noreturn",
    "noinline",
    "__weak",
    "__packed",
    "__ro_after_init",
    "__visible",
    "__latent_entropy",
    "__nocast",
    "__safe",
    "__private",
    "__randomize_layout",
    "__no_randomize_layout",
    "notrace",
    "__sched",
];

/// Annotations that take arguments: the name and its parenthesized arguments are masked.
const CALLS: &[&str] = &[
    "__acquires",
    "__releases",
    "__must_hold",
    "__printf",
    "__scanf",
    "__section",
    "__aligned",
    "__alloc_size",
    "__counted_by",
    "__free",
    "__cond_acquires",
    "__guarded_by",
    "__malloc",
];

/// Macros that take a type among their arguments (`container_of(ptr, struct foo, member)`,
/// `offsetof(struct foo, member)`): a type is not an expression, and tree-sitter-c turns the
/// call into an `ERROR` node. An argument that is only a tagged type name (`struct foo`)
/// becomes `0` padded with spaces: the call parses, and nothing reads the type.
const TYPE_ARGUMENT_CALLS: &[&str] = &[
    "container_of",
    "container_of_const",
    "list_entry",
    "list_entry_rcu",
    "list_first_entry",
    "list_first_entry_or_null",
    "list_last_entry",
    "list_last_entry_or_null",
    "list_next_entry",
    "list_prev_entry",
    "hlist_entry",
    "hlist_entry_safe",
    "llist_entry",
    "rb_entry",
    "rb_entry_safe",
    "offsetof",
    "offsetofend",
    "sizeof_field",
];

/// Blanks the `struct`/`union` keyword of each argument of the call whose parentheses span
/// `open..close` that is only a tagged type name (`struct foo`).
fn blank_type_arguments(bytes: &[u8], open: usize, close: usize, out: &mut [u8]) {
    let mut start = open + 1;
    let mut depth = 0usize;
    let mut j = open + 1;
    while j <= close {
        if let Some(end) = skip_literal(bytes, j) {
            j = end;
            continue;
        }
        match bytes[j] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b',' | b')' if depth == 0 => {
                let argument = &bytes[start..j];
                let lead = argument
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                let rest = &argument[lead..];
                let keyword = [&b"struct"[..], b"union"].into_iter().find(|k| {
                    rest.starts_with(k) && rest.get(k.len()).is_some_and(u8::is_ascii_whitespace)
                });
                if let Some(keyword) = keyword {
                    let name = rest[keyword.len()..].trim_ascii();
                    if !name.is_empty()
                        && is_ident_start(name[0])
                        && name.iter().all(|&b| is_ident(b))
                    {
                        // Not the type's name as an identifier: it may also name a variable
                        // (`lfcc = list_first_entry(&list, struct lfcc, list)`).
                        blank(out, start + lead, j);
                        out[start + lead] = b'0';
                    }
                }
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Skips a comment, string or character literal starting at `i`; returns where it ends.
fn skip_literal(bytes: &[u8], i: usize) -> Option<usize> {
    match (bytes[i], bytes.get(i + 1)) {
        (b'/', Some(b'/')) => Some(
            bytes[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| i + n),
        ),
        (b'/', Some(b'*')) => Some(find(bytes, i + 2, b"*/").map_or(bytes.len(), |n| n + 2)),
        (q @ (b'"' | b'\''), _) => {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != q && bytes[j] != b'\n' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            Some((j + 1).min(bytes.len()))
        }
        _ => None,
    }
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end of the balanced parentheses that open at `i`.
fn close_paren(bytes: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j < bytes.len() {
        if let Some(end) = skip_literal(bytes, j) {
            j = end;
            continue;
        }
        match bytes[j] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            b';' | b'{' | b'}' => return None,
            _ => {}
        }
        j += 1;
    }
    None
}

/// True when the token before `i` ends a statement or opens a block, so `i` starts a statement.
/// `before` is the last significant byte before the line.
fn statement_position(bytes: &[u8], i: usize, before: Option<u8>) -> bool {
    let mut j = i;
    while j > 0 && bytes[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    let previous = if j == 0 { before } else { Some(bytes[j - 1]) };
    matches!(previous, None | Some(b';' | b'{' | b'}' | b':' | b'/'))
}

/// Blanks ASCII bytes only, so the masked text has the same characters at the same offsets.
fn blank(out: &mut [u8], from: usize, to: usize) {
    for b in &mut out[from..to] {
        *b = b' ';
    }
}

/// The last byte of the text before a line that is not whitespace: the context `mask_line` needs.
pub fn last_significant(before: &str) -> Option<u8> {
    before.bytes().rev().find(|b| !b.is_ascii_whitespace())
}

/// Masks one line (without its line break). The result depends only on the line and on `before`,
/// the last significant byte before it, so an editor buffer can re-mask just the lines it edits.
pub fn mask_line(line: &str, before: Option<u8>) -> Cow<'_, str> {
    let bytes = line.as_bytes();
    let directive = line.trim_start();
    // `err:` then `#ifdef CONFIG_X`: the grammar wants a statement after a label, and without
    // one it reads the lines after it as garbage (a `kfree(p);` there became a declaration).
    // The directive becomes an empty statement, so the label has its statement and the lines
    // of the block are read as code; its `#else`/`#endif` stay (the walk then runs both sides
    // of an `#else` one after the other: 8 of the 135 such places in drivers, fs, sound and
    // net have one). `#if 0` stays, its code is never compiled.
    if before == Some(b':')
        && directive.starts_with("#if")
        && !directive.starts_with("#if 0")
        && directive.is_ascii()
    {
        let mut out = vec![b' '; bytes.len()];
        out[line.len() - directive.len()] = b';';
        return Cow::Owned(String::from_utf8(out).expect("ASCII"));
    }
    // A line after a backslash continues a preprocessor directive.
    if directive.starts_with('#') || before == Some(b'\\') {
        return Cow::Borrowed(line);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(end) = skip_literal(bytes, i) {
            i = end;
            continue;
        }
        if !is_ident_start(b) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let word = &line[i..end];
        let after = skip_space(bytes, end);
        // Only a word followed by `(` can be a call; where its parentheses close is looked for
        // only for the few names that need it (a call nested in a line's calls is not scanned
        // again for each of them).
        let call = bytes.get(after) == Some(&b'(');
        let call_end = || close_paren(bytes, after);
        // Every annotation word starts with `_` or `n` (tested), every annotation call with `_`.
        if matches!(b, b'_' | b'n') && WORDS.contains(&word) {
            blank(out.get_or_insert_with(|| bytes.to_vec()), i, end);
        } else if let Some(call_end) = (call && b == b'_' && CALLS.contains(&word))
            .then(call_end)
            .flatten()
            .filter(|&e| line[i..e].is_ascii())
        {
            blank(out.get_or_insert_with(|| bytes.to_vec()), i, call_end);
            end = call_end;
        } else if let Some(call_end) = (call && TYPE_ARGUMENT_CALLS.contains(&word))
            .then(call_end)
            .flatten()
        {
            let o = out.get_or_insert_with(|| bytes.to_vec());
            blank_type_arguments(bytes, after, call_end - 1, o);
        } else if let Some(call_end) =
            (call && word.contains("for_each") && statement_position(bytes, i, before))
                .then(call_end)
                .flatten()
        {
            let next = skip_space(bytes, call_end);
            // `for_each_x(...) {`, a statement on the same line, or the header alone on its line
            // (or before a comment), its body on the next: without a `;` it is not a call.
            let rest = &bytes[next..];
            if rest.is_empty()
                || rest.starts_with(b"/*")
                || rest.starts_with(b"//")
                || is_ident_start(rest[0])
                || rest[0] == b'{'
            {
                let o = out.get_or_insert_with(|| bytes.to_vec());
                blank(o, i, end);
                o[i..i + 5].copy_from_slice(b"while");
            }
        }
        i = end;
    }
    match out {
        // Only ASCII bytes were replaced by ASCII bytes, so the line is still UTF-8.
        Some(out) => Cow::Owned(String::from_utf8(out).expect("masking keeps UTF-8")),
        None => Cow::Borrowed(line),
    }
}

/// The lines of `text` with their line breaks: `\n`, `\r\n`, or a `\r` alone (as ropey and the
/// LSP count them).
fn lines_inclusive(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end = (start..bytes.len())
            .find(|&i| bytes[i] == b'\n' || (bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
            .map_or(bytes.len(), |i| i + 1);
        let line = &text[start..end];
        start = end;
        Some(line)
    })
}

/// Rewrites the kernel dialect into plain C of the same length; borrows when nothing changes.
pub fn mask(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut before = None;
    let mut start = 0;
    for line in lines_inclusive(text) {
        let body = line.trim_end_matches(['\n', '\r']);
        let masked = mask_line(body, before);
        if let Cow::Owned(masked) = masked {
            let o = out.get_or_insert_with(|| text[..start].to_owned());
            o.push_str(&masked);
            o.push_str(&line[body.len()..]);
        } else if let Some(o) = &mut out {
            o.push_str(line);
        }
        before = last_significant(body).or(before);
        start += line.len();
    }
    match out {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_a_lone_carriage_return_too() {
        let text = "#define X 1\rstatic long f(void __user *p)\r{\r}\r";
        let masked = mask(text);
        assert_eq!(masked, text.replace("__user", "      "));
        assert_eq!(
            lines_inclusive("a\rb\r\nc\nd").collect::<Vec<_>>(),
            ["a\r", "b\r\n", "c\n", "d"]
        );
    }

    #[test]
    fn annotations_become_spaces_of_the_same_length() {
        let text = "static long f(void __user *p) __acquires(&x->lock)\n{\n\treturn 0;\n}\n";
        let masked = mask(text);
        assert_eq!(masked.len(), text.len());
        let expected = text
            .replace("__user", &" ".repeat(6))
            .replace("__acquires(&x->lock)", &" ".repeat(20));
        assert_eq!(masked, expected);
    }

    #[test]
    fn iterator_macros_in_statement_position_become_loops() {
        let text = "{\n\tlist_for_each_entry(pos, head, list) {\n\t\tx(pos);\n\t}\n\tlist_for_each_entry(a, b, c);\n}";
        let masked = mask(text);
        assert!(
            masked.starts_with("{\n\twhile              (pos, head, list) {"),
            "{masked}"
        );
        assert!(
            masked.contains("\tlist_for_each_entry(a, b, c);"),
            "a call stays a call"
        );
        // A directive right after a label is an empty statement for the grammar.
        let text = "{\nout:\n#ifdef CONFIG_X\n\tkfree(p);\n#endif\n\treturn 0;\n}";
        assert!(mask(text).starts_with("{\nout:\n;              \n\tkfree(p);\n#endif"));
        let text = "{\nout:\n#if 0\n\tkfree(p);\n#endif\n}";
        assert!(mask(text).contains("#if 0"));
        // The body on the next line, with or without a comment after the header.
        let text = "{\n\tfor_each_child_of_node(np, c) /* all */\n\t\tif (x(c))\n\t\t\tbreak;\n}";
        assert!(mask(text).starts_with("{\n\twhile                 (np, c) /* all */\n"));
        let text = "{\n\tfor_each_child_of_node(np, c)\n\t\tx(c);\n}";
        assert!(mask(text).starts_with("{\n\twhile                 (np, c)\n"));
    }

    #[test]
    fn a_type_given_to_container_of_becomes_a_constant() {
        let text = "{\n\tf = container_of(w, struct foo, work);\n\tn = offsetof(union u, x) + sizeof_field(struct foo, (a));\n}";
        let masked = mask(text);
        assert_eq!(masked.len(), text.len());
        assert!(
            masked.contains("container_of(w, 0         , work);"),
            "{masked}"
        );
        assert!(masked.contains("offsetof(0      , x)"), "{masked}");
        assert!(masked.contains("sizeof_field(0         , (a))"), "{masked}");
        // Not a lone tagged type name: left as it is.
        let text = "{\n\tp = list_entry(h, struct foo *, node);\n}";
        assert_eq!(mask(text), text);
        let parse = crate::analysis::syntax::parse(
            "static void f(struct work_struct *w)\n{\n\tstruct foo *f = container_of(w, struct foo, work);\n\tkfree(f);\n}\n",
            None,
        );
        assert_eq!(parse.errors, 0);
    }

    #[test]
    fn annotation_names_start_where_mask_line_looks_for_them() {
        assert!(WORDS.iter().all(|w| matches!(w.as_bytes()[0], b'_' | b'n')));
        assert!(CALLS.iter().all(|w| w.starts_with('_')));
    }

    #[test]
    fn comments_strings_and_directives_are_left_alone() {
        let text = "#define list_for_each_entry(p, h, m) \\\n\tfor (;;)\n/* __user */ char *s = \"__iomem\";\n";
        assert!(matches!(mask(text), Cow::Borrowed(_)));
    }
}
