//! The process's memory allocator: jemalloc, for Rust's allocations and, in the binaries,
//! tree-sitter's too.
//!
//! A check allocates and frees a great many small blocks on every core: tree-sitter's subtrees
//! while parsing, the path walks' sets and strings after. Over the kernel's `drivers/` on two
//! cores, `aidiag check` took about 10% less time with jemalloc than with glibc's malloc
//! (alternating runs; docs/kernel-sweep.md has the figures), for the same report byte for byte.
//! The global allocator is declared here, so that every binary of the crate (tests, benchmarks
//! and examples included) runs on it. Not on MSVC targets, where jemalloc does not build.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Makes tree-sitter allocate with jemalloc as well (its C library calls `malloc` otherwise).
///
/// # Safety
/// Call it first thing in `main`, before any thread starts and before any tree-sitter call:
/// a tree allocated by one allocator must never be freed by the other (tree-sitter's own rule
/// for `ts_set_allocator`).
pub unsafe fn use_for_tree_sitter() {
    #[cfg(not(target_env = "msvc"))]
    // SAFETY: the caller's contract above; the four functions are one allocator's, return
    // malloc's alignment and never a null pointer for a non-empty request (they abort instead,
    // as tree-sitter's own defaults do).
    unsafe {
        tree_sitter::set_allocator(Some(tree_sitter::Allocator {
            malloc: jemalloc::malloc,
            calloc: jemalloc::calloc,
            realloc: jemalloc::realloc,
            free: jemalloc::free,
        }));
    }
}

#[cfg(not(target_env = "msvc"))]
mod jemalloc {
    use std::ffi::c_void;

    /// Tree-sitter's default allocator aborts when memory runs out; so do these.
    fn out_of_memory(bytes: usize) -> ! {
        eprintln!("aidiag: tree-sitter failed to allocate {bytes} bytes");
        std::process::abort()
    }

    pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
        // SAFETY: a plain allocation request.
        let block = unsafe { tikv_jemalloc_sys::malloc(size) };
        if block.is_null() && size > 0 {
            out_of_memory(size);
        }
        block
    }

    pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
        // SAFETY: a plain allocation request.
        let block = unsafe { tikv_jemalloc_sys::calloc(count, size) };
        if block.is_null() && count > 0 && size > 0 {
            out_of_memory(count.saturating_mul(size));
        }
        block
    }

    pub unsafe extern "C" fn realloc(old: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: tree-sitter passes a block these functions allocated, or null.
        let block = unsafe { tikv_jemalloc_sys::realloc(old, size) };
        if block.is_null() && size > 0 {
            out_of_memory(size);
        }
        block
    }

    pub unsafe extern "C" fn free(block: *mut c_void) {
        // SAFETY: tree-sitter frees only what these functions allocated.
        unsafe { tikv_jemalloc_sys::free(block) }
    }
}
