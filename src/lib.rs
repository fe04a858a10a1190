//! aidiag: bug diagnostics for C code (Linux kernel first), computed on the user's machine.
//!
//! Layers, from the inside out (see ARCHITECTURE.md): `analysis` (the core, plain data),
//! `server` (LSP over stdio), `cli` (`aidiag check`) and `model` (the local model's file). Only
//! `server` knows LSP.

pub mod allocator;
pub mod analysis;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod server;
