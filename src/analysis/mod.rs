//! The analysis core: parsing, functions and their hashes, rules, findings and fixes.
//!
//! It speaks plain data (byte offsets, rule ids) and does no I/O; it knows nothing of LSP or of
//! the command line. A test in `tests/layers.rs` keeps it that way.

pub mod cache;
pub mod context;
pub mod dialect;
pub mod diff;
pub mod finding;
pub mod fix;
pub mod flow;
pub mod functions;
pub mod rules;
pub mod summary;
pub mod syntax;

pub use finding::{ByteRange, Edge, Edit, Finding, Fix, Message, Origin, Related, Severity};
pub use rules::CheckOptions;

/// Checks every function of a file.
///
/// Each function's named nodes are listed once, for the file's summaries and for the rules'
/// own walks of it; the summaries are read up front (nearly every file that has a function
/// another calls needs them) and pinned for the file's checks.
pub fn check_text(text: &str, options: CheckOptions) -> Vec<Finding> {
    if !functions::may_define_functions(text) {
        return Vec::new();
    }
    let parse = syntax::parse(text, None);
    let functions = functions::function_nodes(&parse.tree);
    let lists: Vec<std::rc::Rc<[(tree_sitter::Node, usize)]>> = functions
        .iter()
        .map(|function| syntax::named_nodes(*function).into())
        .collect();
    let at: std::collections::HashMap<usize, usize> = functions
        .iter()
        .enumerate()
        .map(|(i, function)| (function.id(), i))
        .collect();
    let listed = |definition: tree_sitter::Node| at.get(&definition.id()).map(|&i| &lists[i][..]);
    let summaries = summary::summarize_listed(parse.tree.root_node(), text, &listed);
    summary::with_pinned(std::rc::Rc::new(summaries), || {
        functions
            .iter()
            .zip(&lists)
            .flat_map(|(function, nodes)| {
                rules::check_listed_function(*function, nodes.clone(), text, options)
            })
            .collect()
    })
}
