//! Parsing C with tree-sitter. Parsing never fails: it returns a tree plus the number of syntax
//! errors, and every rule runs on trees with `ERROR` nodes (kernel macros produce them).

use tree_sitter::{Language, Node, Parser, Tree};

/// The C grammar used everywhere in aidiag.
pub fn language() -> Language {
    tree_sitter_c::LANGUAGE.into()
}

/// The grammar, kept for the whole run: the names it gives out (of node kinds, of fields) live
/// as long as it does.
fn grammar() -> &'static Language {
    static GRAMMAR: std::sync::OnceLock<Language> = std::sync::OnceLock::new();
    GRAMMAR.get_or_init(language)
}

/// The field ids of the C grammar, by name: looking a field up by name scans every field name of
/// the grammar with `strncmp` on each call, and the rules and the path walk ask for fields
/// millions of times. Here the names the analysis asks for most come first, and a comparison
/// of two names of different lengths costs one instruction.
fn field_id(name: &str) -> Option<std::num::NonZeroU16> {
    const FIRST: &[&str] = &[
        "argument",
        "operator",
        "declarator",
        "left",
        "right",
        "condition",
        "body",
        "value",
    ];
    static IDS: std::sync::OnceLock<Vec<(&'static str, std::num::NonZeroU16)>> =
        std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let language = grammar();
        let mut ids: Vec<(&'static str, std::num::NonZeroU16)> = (1..=language.field_count()
            as u16)
            .filter_map(|id| Some((language.field_name_for_id(id)?, id.try_into().ok()?)))
            .collect();
        ids.sort_by_key(|(n, _)| FIRST.iter().position(|f| f == n).unwrap_or(FIRST.len()));
        ids
    })
    .iter()
    .find(|(n, _)| *n == name)
    .map(|(_, id)| *id)
}

/// The names of the grammar's node kinds, by kind id.
fn kind_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let language = grammar();
        (0..language.node_kind_count() as u16)
            .map(|id| language.node_kind_for_id(id).unwrap_or(""))
            .collect()
    })
}

/// Fields by name, through the grammar's field ids (see `field_id`), and kinds by id.
pub trait Fields<'t> {
    /// The child in field `name` (`Node::child_by_field_name`).
    fn field(&self, name: &str) -> Option<Node<'t>>;
    /// The node's kind (`Node::kind`), from a table built once: `Node::kind` measures the
    /// grammar's C string and checks it is UTF-8 on every call, and the rules and the path walk
    /// ask for kinds millions of times.
    fn kind_name(&self) -> &'static str;
}

impl<'t> Fields<'t> for Node<'t> {
    fn field(&self, name: &str) -> Option<Node<'t>> {
        self.child_by_field_id(field_id(name)?.get())
    }

    fn kind_name(&self) -> &'static str {
        // `ERROR` (id 65535) and any id past the table take the slow way.
        match kind_names().get(usize::from(self.kind_id())) {
            Some(name) if !name.is_empty() => name,
            _ => grammar()
                .node_kind_for_id(self.kind_id())
                .unwrap_or("ERROR"),
        }
    }
}

/// The root of the tree `node` belongs to (the file's `translation_unit`).
pub fn root(node: Node) -> Node {
    let mut root = node;
    while let Some(parent) = root.parent() {
        root = parent;
    }
    root
}

/// A syntax tree and how many error or missing nodes it holds.
pub struct Parse {
    pub tree: Tree,
    pub errors: usize,
}

thread_local! {
    /// One parser per thread: creating a parser allocates its stacks and lexer buffers.
    static PARSER: std::cell::RefCell<Parser> = std::cell::RefCell::new({
        let mut parser = Parser::new();
        parser
            .set_language(&language())
            .expect("the bundled tree-sitter-c grammar matches the tree-sitter runtime");
        parser
    });
}

fn with_parser<T>(f: impl FnOnce(&mut Parser) -> T) -> T {
    PARSER.with(|p| f(&mut p.borrow_mut()))
}

/// Parses `text`, reusing `old_tree` (already edited with `Tree::edit`) when given. The kernel
/// dialect is masked first (see `dialect`); offsets in the tree are offsets in `text`.
pub fn parse(text: &str, old_tree: Option<&Tree>) -> Parse {
    let masked = super::dialect::mask(text);
    let masked = lone_cr_as_lf(&masked);
    let tree = with_parser(|p| p.parse(masked.as_bytes(), old_tree))
        .expect("tree-sitter parses without timeout or cancellation flag");
    let errors = count_errors(tree.root_node());
    Parse { tree, errors }
}

/// Whether the `\r` at `i` ends a line on its own (old Mac OS line endings). The grammar ends
/// comments and preprocessor lines at `\n` only, so a file with such line breaks would be one long
/// comment after its first `//`; the parser is shown `\n` there instead, one byte for one.
pub fn is_lone_cr(bytes: &[u8], i: usize) -> bool {
    bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n')
}

/// `text` with every lone `\r` replaced by `\n` (same length); borrows when there is none.
pub fn lone_cr_as_lf(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    if !(0..bytes.len()).any(|i| is_lone_cr(bytes, i)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = bytes.to_vec();
    for (i, b) in out.iter_mut().enumerate() {
        if is_lone_cr(bytes, i) {
            *b = b'\n';
        }
    }
    std::borrow::Cow::Owned(String::from_utf8(out).expect("ASCII for ASCII keeps UTF-8"))
}

/// Parses text that is handed over in chunks (a rope), reusing `old_tree` when given. The
/// chunks must already be masked (see `dialect`), and lone `\r`s shown as `\n` (see
/// `is_lone_cr`).
pub fn parse_chunks<'a, F, T>(mut read: F, old_tree: Option<&Tree>) -> Tree
where
    F: FnMut(usize) -> T,
    T: AsRef<[u8]> + 'a,
{
    with_parser(|p| p.parse_with_options(&mut |offset, _| read(offset), old_tree, None))
        .expect("tree-sitter parses without timeout or cancellation flag")
}

/// Counts `ERROR` and missing nodes under `node` (without recursion: trees can be deep).
pub fn count_errors(node: Node) -> usize {
    if !node.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        count += usize::from(node.is_error() || node.is_missing());
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor).filter(|c| c.has_error()));
    }
    count
}

/// True when the tree under `node` nests more than `limit` levels deep. Without recursion, so
/// that any input can be measured. A subtree is at most as deep as it has nodes
/// (`descendant_count`, kept in the tree: no walk), so the walk enters only subtrees large
/// enough to reach past `limit`: in real code a few nodes near the top of a function.
pub fn deeper_than(node: Node, limit: usize) -> bool {
    let mut cursor = node.walk();
    let mut depth = 0;
    loop {
        // The cursor's node sits `depth` levels under `node`; its subtree reaches at most
        // `depth + descendant_count - 1`.
        if depth + cursor.node().descendant_count() - 1 > limit {
            if depth > limit {
                return true;
            }
            if cursor.goto_first_child() {
                depth += 1;
                continue;
            }
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if depth == 0 || !cursor.goto_parent() {
                return false;
            }
            depth -= 1;
        }
    }
}

/// How deep the tree under `node` goes, counted up to `limit + 1` (the walk stops there).
/// Without recursion, so that any input can be measured.
pub fn depth(node: Node, limit: usize) -> usize {
    let mut cursor = node.walk();
    let (mut depth, mut deepest) = (0, 0);
    loop {
        if cursor.goto_first_child() {
            depth += 1;
            deepest = deepest.max(depth);
            if deepest > limit {
                return deepest;
            }
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return deepest;
            }
            depth -= 1;
        }
    }
}

/// True when `node` sits in the body of an `#if 0` block: code that is never compiled.
/// `is_zero` tells whether an `#if` condition node reads `0`.
pub fn never_compiled(node: Node, is_zero: impl Fn(Node) -> bool) -> bool {
    let mut child = node;
    while let Some(parent) = child.parent() {
        if parent.kind_name() == "preproc_if"
            && parent.field("condition").is_some_and(&is_zero)
            && parent
                .field("alternative")
                .is_none_or(|a| a.id() != child.id())
        {
            return true;
        }
        child = parent;
    }
    false
}

/// Visits the named nodes under `root` (itself included) in source order, each with its depth
/// below `root`, on one tree cursor: no list of children is built. `visit` answers whether to
/// go into what the node holds.
pub fn preorder<'t>(root: Node<'t>, mut visit: impl FnMut(Node<'t>, usize) -> bool) {
    let mut cursor = root.walk();
    let mut depth = 0;
    loop {
        let node = cursor.node();
        // Anonymous nodes (punctuation, keywords) are tokens: never visited, never entered.
        if node.is_named() && visit(node, depth) && cursor.goto_first_child() {
            depth += 1;
            continue;
        }
        loop {
            if depth == 0 {
                return;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            cursor.goto_parent();
            depth -= 1;
        }
    }
}

/// The named nodes under `root` (itself first) in source order, with their depth below it, as
/// `preorder` visits them: the walks of one function that each look at every node (the rules'
/// patterns, its declarations, its aliases) read this list instead of walking the tree again.
pub fn named_nodes<'t>(root: Node<'t>) -> Vec<(Node<'t>, usize)> {
    let mut out = Vec::new();
    preorder(root, |node, depth| {
        out.push((node, depth));
        true
    });
    out
}

/// The nodes of `node`'s subtree (itself first), from `nodes` as `named_nodes` lists them;
/// empty when `node` is not among them.
pub fn subtree<'a, 't>(nodes: &'a [(Node<'t>, usize)], node: Node<'t>) -> &'a [(Node<'t>, usize)] {
    let Some(at) = nodes.iter().position(|(n, _)| *n == node) else {
        return &[];
    };
    let depth = nodes[at].1;
    let end = nodes[at + 1..]
        .iter()
        .position(|&(_, d)| d <= depth)
        .map_or(nodes.len(), |i| at + 1 + i);
    &nodes[at..end]
}

/// True when `test` accepts a node under `root` (itself included), walked without recursion.
/// `test` answers `Some(true)` for a hit, `Some(false)` to pass over a node and what it holds,
/// and `None` to look inside it.
pub fn any_node<'t>(root: Node<'t>, mut test: impl FnMut(Node<'t>) -> Option<bool>) -> bool {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match test(node) {
            Some(true) => return true,
            Some(false) => {}
            None => {
                let mut cursor = node.walk();
                stack.extend(node.named_children(&mut cursor));
            }
        }
    }
    false
}

/// The text of a node; empty when the node does not lie on character boundaries.
pub fn text<'a>(node: Node, source: &'a str) -> &'a str {
    source.get(node.byte_range()).unwrap_or("")
}

/// Skips parentheses and casts: `((void *)p)` gives `p`.
pub fn strip_parens(mut node: Node) -> Node {
    loop {
        match node.kind_name() {
            "parenthesized_expression" => match node.named_child(0) {
                Some(inner) if node.named_child_count() == 1 => node = inner,
                _ => return node,
            },
            "cast_expression" => match node.field("value") {
                Some(inner) => node = inner,
                None => return node,
            },
            _ => return node,
        }
    }
}

/// Text with runs of whitespace collapsed to nothing, used to compare expressions such as lock
/// arguments: `& dev -> lock` and `&dev->lock` are the same lock.
pub fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The node around `node` once parentheses are left: the assignment in `if ((err = f()))`.
pub fn parent_outside_parens(node: Node) -> Option<Node> {
    first_not(
        node.parent(),
        |p| p.parent(),
        |p| p.kind_name() == "parenthesized_expression",
    )
}

/// The node around `node` once parentheses and casts are left: the assignment in
/// `p = (char *)realloc(p, n)`, the call in `f((struct s *)&x)`.
pub fn parent_outside_casts(node: Node) -> Option<Node> {
    first_not(
        node.parent(),
        |p| p.parent(),
        |p| {
            matches!(
                p.kind_name(),
                "parenthesized_expression" | "cast_expression"
            )
        },
    )
}

/// `start`, or the first node after it on the way `step` goes that `skip` does not accept.
fn first_not<'t>(
    start: Option<Node<'t>>,
    step: impl Fn(Node<'t>) -> Option<Node<'t>>,
    skip: impl Fn(Node<'t>) -> bool,
) -> Option<Node<'t>> {
    let mut node = start;
    while let Some(skipped) = node.filter(|n| skip(*n)) {
        node = step(skipped);
    }
    node
}

/// The local a value is stored in where it is computed: `x` in `x = f()` or in
/// `struct foo *x = f()`.
pub fn assigned_local(value: Node) -> Option<Node> {
    let parent = parent_outside_parens(value)?;
    match parent.kind_name() {
        "assignment_expression" => parent
            .field("left")
            .filter(|l| l.kind_name() == "identifier"),
        "init_declarator" => parent.field("declarator").and_then(declared_name),
        _ => None,
    }
}

/// An iterator macro the dialect masked as a loop (`list_for_each_entry(pos, head, member) {`
/// reads as a `while` over its arguments): its name as written, and its arguments in order.
/// `None` for a real `while`.
pub fn iterator_macro<'t, 'a>(
    loop_node: Node<'t>,
    source: &'a str,
) -> Option<(&'a str, Vec<Node<'t>>)> {
    let written = &source[loop_node.start_byte()..];
    if loop_node.kind_name() != "while_statement" || written.starts_with("while") {
        return None;
    }
    let name = written
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()?;
    let mut args = Vec::new();
    let mut stack = vec![strip_parens(loop_node.field("condition")?)];
    while let Some(node) = stack.pop() {
        match node.kind_name() {
            // `a, b, c` nests to the left: the last argument is the right child.
            "comma_expression" => {
                let mut cursor = node.walk();
                stack.extend(node.named_children(&mut cursor));
            }
            _ => args.push(node),
        }
    }
    args.sort_by_key(|n| n.start_byte());
    Some((name, args))
}

/// The name of the function called by a call expression, when it is a plain identifier.
pub fn callee_name<'a>(call: Node, source: &'a str) -> Option<&'a str> {
    let function = call.field("function")?;
    (function.kind_name() == "identifier").then(|| text(function, source))
}

/// The named sibling after `node` that is not a comment: the next statement of a block.
pub fn next_code_sibling(node: Node) -> Option<Node> {
    first_not(
        node.next_named_sibling(),
        |n| n.next_named_sibling(),
        |n| n.kind_name() == "comment",
    )
}

/// The named sibling before `node` that is not a comment: the previous statement of a block.
pub fn prev_code_sibling(node: Node) -> Option<Node> {
    first_not(
        node.prev_named_sibling(),
        |n| n.prev_named_sibling(),
        |n| n.kind_name() == "comment",
    )
}

/// The arguments of a call expression, without the punctuation.
pub fn call_arguments(call: Node) -> Vec<Node> {
    let Some(list) = call.field("arguments") else {
        return Vec::new();
    };
    let mut cursor = list.walk();
    list.named_children(&mut cursor)
        .filter(|n| n.kind_name() != "comment")
        .collect()
}

/// The written place and the value of `place = value` (any assignment operator) or of an
/// initializer (`int *p = value`, whose place is the whole declarator): where a name gets its
/// value, for the checks that ask.
pub fn assignment(node: Node) -> Option<(Node, Node)> {
    let (place, value) = match node.kind_name() {
        "assignment_expression" => ("left", "right"),
        "init_declarator" => ("declarator", "value"),
        _ => return None,
    };
    Some((node.field(place)?, node.field(value)?))
}

/// The identifier declared by a declarator (`*p`, `p[4]`, `p = init` all declare `p`).
pub fn declared_name<'a>(mut declarator: Node<'a>) -> Option<Node<'a>> {
    loop {
        match declarator.kind_name() {
            "identifier" => return Some(declarator),
            "init_declarator"
            | "pointer_declarator"
            | "array_declarator"
            | "parenthesized_declarator"
            | "attributed_declarator" => {
                declarator = declarator
                    .field("declarator")
                    .or_else(|| declarator.named_child(0))?;
            }
            _ => return None,
        }
    }
}

/// Where the line holding `offset` starts (a `\r\n` is one line break).
pub fn line_start(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    let bytes = source.as_bytes();
    let mut before = &source[..offset];
    loop {
        match before.rfind(['\n', '\r']) {
            // The `\r` of a `\r\n` that `offset` splits belongs to this line's own break.
            Some(i)
                if bytes[i] == b'\r' && i + 1 == offset && bytes.get(offset) == Some(&b'\n') =>
            {
                before = &source[..i];
            }
            Some(i) => return i + 1,
            None => return 0,
        }
    }
}

/// Where the line holding `offset` ends, before its line break.
pub fn line_end(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    source[offset..]
        .find(['\n', '\r'])
        .map_or(source.len(), |i| offset + i)
}

/// The whitespace that indents the line containing `offset`.
pub fn indentation(source: &str, offset: usize) -> &str {
    let start = line_start(source, offset);
    let rest = &source[start..];
    let len = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    &rest[..len]
}

/// One more level of indentation in the style the file already uses.
pub fn indent_unit(indent: &str) -> &'static str {
    if indent.contains('\t') || indent.is_empty() {
        "\t"
    } else {
        "    "
    }
}

/// Finds the line terminator style of a file ("\n" unless it uses "\r\n").
pub fn newline(source: &str) -> &'static str {
    if source.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// Maps byte offsets of a plain string to 0-based lines and columns.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the lines of `text`; `\n`, `\r\n` and `\r` end a line, as in LSP.
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex { starts }
    }

    /// The 0-based line holding `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// The byte offset where 0-based `line` starts (the end of the text past the last line).
    pub fn line_start(&self, line: usize) -> usize {
        self.starts[line.min(self.starts.len() - 1)]
    }

    /// 0-based line and byte column of `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line(offset);
        (line, offset - self.starts[line])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preorder_visits_the_named_nodes_in_source_order_with_their_depth() {
        let text = "int f(int a) { if (a) { g(a, (b)); } return a +; }\nstruct s { int x; };\n";
        let parse = parse(text, None);
        let root = parse.tree.root_node();
        // The same nodes listed by recursion over named children.
        fn listed<'t>(node: Node<'t>, depth: usize, out: &mut Vec<(usize, usize)>) {
            out.push((node.id(), depth));
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                listed(child, depth + 1, out);
            }
        }
        let mut expected = Vec::new();
        listed(root, 0, &mut expected);
        let mut visited = Vec::new();
        preorder(root, |node, depth| {
            visited.push((node.id(), depth));
            true
        });
        assert!(expected.len() > 20, "{expected:?}");
        assert_eq!(visited, expected);
        // Answering false leaves out what a node holds, and only that.
        let mut outside = Vec::new();
        preorder(root, |node, _| {
            outside.push(node.kind_name());
            node.kind_name() != "function_definition"
        });
        assert!(outside.contains(&"function_definition"));
        assert!(outside.contains(&"struct_specifier"));
        assert!(!outside.contains(&"if_statement"));
    }

    #[test]
    fn a_subtree_is_the_run_of_nodes_below_its_root() {
        let text = "int f(int a) { if (a) { g(a); } return a; }\nint h(void) { return 1; }\n";
        let parse = parse(text, None);
        let root = parse.tree.root_node();
        let all = named_nodes(root);
        let ids = |nodes: &[(Node, usize)]| nodes.iter().map(|(n, _)| n.id()).collect::<Vec<_>>();
        for &(node, _) in &all {
            assert_eq!(ids(subtree(&all, node)), ids(&named_nodes(node)));
        }
        let other = root.named_child(0).unwrap();
        assert_eq!(subtree(&all[..1], other).len(), 0);
    }

    #[test]
    fn kind_name_is_the_kind_of_every_node_errors_included() {
        let text = "}\nint f(int a) { return a +; }\n#if X\nstatic int g(void) { f(1) }\n";
        let parse = parse(text, None);
        let mut stack = vec![parse.tree.root_node()];
        let mut errors = 0;
        while let Some(node) = stack.pop() {
            assert_eq!(node.kind_name(), node.kind());
            errors += usize::from(node.is_error());
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
        assert!(errors > 0);
    }

    #[test]
    fn a_crlf_is_one_line_break_wherever_the_offset_falls() {
        let text = "a\r\nbc\r\n";
        assert_eq!(line_start(text, 1), 0);
        assert_eq!(line_start(text, 2), 0, "the \\n of a\\r\\n is on line a");
        assert_eq!(line_start(text, 3), 3);
        assert_eq!(line_start(text, 6), 3);
        assert_eq!(line_end(text, 3), 5);
        assert_eq!(line_start("a\rb", 2), 2);
    }

    #[test]
    fn line_index_handles_all_line_breaks() {
        let index = LineIndex::new("a\nb\r\nc\rd");
        assert_eq!(index.line_col(0), (0, 0));
        assert_eq!(index.line_col(2), (1, 0));
        assert_eq!(index.line_col(5), (2, 0));
        assert_eq!(index.line_col(7), (3, 0));
        assert_eq!(index.line(100), 3);
    }

    #[test]
    fn parse_counts_errors_instead_of_failing() {
        let clean = parse("int f(void) { return 0; }\n", None);
        assert_eq!(clean.errors, 0);
        let broken = parse("int f(void) { return 0 }\n", None);
        assert!(broken.errors > 0);
    }

    #[test]
    fn deeper_than_agrees_with_the_depth_of_every_subtree() {
        let text = "int f(int a)\n{\n\tif (a) {\n\t\tg(((((((((a)))))))));\n\t}\n\treturn h(a, (((a))));\n}\n";
        let parse = parse(text, None);
        let function = crate::analysis::functions::function_nodes(&parse.tree)[0];
        let mut stack = vec![function];
        while let Some(node) = stack.pop() {
            let depth = super::depth(node, usize::MAX);
            for limit in 0..depth + 2 {
                assert_eq!(
                    deeper_than(node, limit),
                    depth > limit,
                    "{node:?} at {limit}"
                );
            }
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
    }
}
