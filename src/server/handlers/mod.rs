//! One file per LSP request or notification family.

pub mod code_action;
pub mod command;
pub mod hover;
pub mod initialize;
pub mod text_document;
