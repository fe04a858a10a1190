//! Prints the syntax tree of a C file as the rules see it (kernel dialect masked), for rule
//! authors: `cargo run --example dump_tree FILE.c`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: dump_tree FILE.c");
    let text = std::fs::read_to_string(&path).expect("read file");
    let tree = aidiag::analysis::syntax::parse(&text, None).tree;
    print(tree.root_node(), &text, 0, None);
}

fn print(node: tree_sitter::Node, text: &str, depth: usize, field: Option<&str>) {
    if !node.is_named() && !node.is_missing() {
        return;
    }
    let field = field.map(|f| format!("{f}: ")).unwrap_or_default();
    let leaf = if node.named_child_count() == 0 {
        format!(" {:?}", &text[node.byte_range()])
    } else {
        String::new()
    };
    let missing = if node.is_missing() { " MISSING" } else { "" };
    println!(
        "{}{}{}{} [{}]{}",
        "  ".repeat(depth),
        field,
        node.kind(),
        missing,
        node.start_position().row + 1,
        leaf
    );
    let mut cursor = node.walk();
    for (i, child) in node.children(&mut cursor).enumerate() {
        print(child, text, depth + 1, node.field_name_for_child(i as u32));
    }
}
