//! The floor under `aidiag check`'s time: reads and parses every `.c` and `.h` file under the
//! given paths that the check parses (with the kernel dialect masked, as a check does; not the
//! files without a brace that may open a function body, see `functions::may_define_functions`) on every core,
//! and runs no rule. `scripts/kernel-sweep.sh --reference` times it beside the check, in the
//! same run.

use std::path::PathBuf;

fn files(path: PathBuf, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            return;
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            files(child, out);
        }
    } else if path.extension().is_some_and(|e| e == "c" || e == "h") {
        out.push(path);
    }
}

fn main() {
    // The check's allocator (see `aidiag::allocator`), so that the floor is measured alike.
    // SAFETY: first thing, one thread, no tree-sitter call yet.
    unsafe { aidiag::allocator::use_for_tree_sitter() };
    let mut paths = Vec::new();
    for arg in std::env::args_os().skip(1) {
        files(PathBuf::from(arg), &mut paths);
    }
    let start = std::time::Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let nodes: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let mut nodes = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let Ok(bytes) = std::fs::read(path) else {
                            continue;
                        };
                        let text = String::from_utf8_lossy(&bytes);
                        if !aidiag::analysis::functions::may_define_functions(&text) {
                            continue;
                        }
                        let parse = aidiag::analysis::syntax::parse(&text, None);
                        nodes += parse.tree.root_node().descendant_count();
                    }
                    nodes
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    println!(
        "parsed {} files ({nodes} nodes) in {:.1} s on {cores} cores",
        paths.len(),
        start.elapsed().as_secs_f64()
    );
}
