; double-free: the same pointer freed twice on one path.

; Frees: the freed pointer is the first argument, or the second for kmem_cache_free.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @free.arg)) @free
  (#match? @fn "^(kfree|kvfree|vfree|kfree_sensitive|kvfree_sensitive|kzfree|free|fclose)$"))
((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @free.arg)) @free
  (#eq? @fn "kmem_cache_free"))
