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
pub fn check_text(text: &str, options: CheckOptions) -> Vec<Finding> {
    if !functions::may_define_functions(text) {
        return Vec::new();
    }
    let parse = syntax::parse(text, None);
    functions::function_nodes(&parse.tree)
        .into_iter()
        .flat_map(|function| rules::check_function(function, text, options))
        .collect()
}
