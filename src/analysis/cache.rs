//! Findings cached by function: the key is the hash of the function's normalized text, the
//! rule-set version and the file's context (what its other functions tell the rules, such as a
//! callee that releases a lock), so unchanged code is never checked twice, even after it moved.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use tree_sitter::{Node, Tree};

use super::finding::{ByteRange, Finding};
use super::functions::Function;
use super::rules::{self, CheckOptions};
use crate::analysis::syntax::Fields as _;

type Key = (u64, u64, u64);

/// An LRU of findings, stored in the coordinates of each function's normalized text.
pub struct FindingCache {
    entries: Mutex<LruCache<Key, Arc<[Finding]>>>,
    checks: AtomicU64,
}

impl FindingCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("capacity is at least 1");
        FindingCache {
            entries: Mutex::new(LruCache::new(capacity)),
            checks: AtomicU64::new(0),
        }
    }

    /// How many functions were checked by the rules (cache misses) so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    fn key(function: &Function) -> Key {
        (function.hash, rules::ruleset_version(), function.context)
    }

    /// Drops the cached findings of `function`, so that the next look checks it again.
    pub fn forget(&self, function: &Function) {
        self.lock().pop(&Self::key(function));
    }

    /// The cached findings of `function`, in document offsets, if it was checked before.
    pub fn cached(&self, function: &Function) -> Option<Vec<Finding>> {
        let hit = self.lock().get(&Self::key(function)).cloned()?;
        Some(
            hit.iter()
                .map(|f| {
                    let mut f = f.clone();
                    f.map_offsets(&|o, edge| function.from_normalized(o, edge));
                    f
                })
                .collect(),
        )
    }

    /// The findings of `function`, from the cache or by checking it in `tree`/`source`.
    pub fn findings(&self, function: &Function, tree: &Tree, source: &str) -> Vec<Finding> {
        if let Some(hit) = self.cached(function) {
            return hit;
        }
        let Some(node) = function_node(tree, function.range) else {
            return Vec::new();
        };
        let findings = rules::check_function(node, source, CheckOptions::default());
        self.checks.fetch_add(1, Ordering::Relaxed);
        let normalized: Arc<[Finding]> = findings
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.map_offsets(&|o, edge| function.to_normalized(o, edge));
                f
            })
            .collect();
        self.lock().put(Self::key(function), normalized);
        findings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Arc<[Finding]>>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that matters
        // here (entries are whole values), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `function_definition` node spanning exactly `range`.
pub fn function_node(tree: &Tree, range: ByteRange) -> Option<Node<'_>> {
    let mut node = tree
        .root_node()
        .descendant_for_byte_range(range.start, range.end)?;
    loop {
        if node.kind_name() == "function_definition" && ByteRange::of(node) == range {
            return Some(node);
        }
        node = node.parent()?;
    }
}
