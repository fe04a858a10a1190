; unchecked-alloc: an allocation that can return NULL, dereferenced before any NULL test.

; Allocators that return NULL on failure (devm_* ones too: managed, but they still fail).
((call_expression function: (identifier) @fn) @alloc
  (#match? @fn "^(kmalloc|kzalloc|kcalloc|kmalloc_array|kmalloc_node|kzalloc_node|kcalloc_node|kvmalloc|kvzalloc|kvcalloc|kvmalloc_array|vmalloc|vzalloc|vmalloc_array|vcalloc|kmemdup|kstrdup|kstrndup|kmem_cache_alloc|kmem_cache_zalloc|kvmalloc_node|kvzalloc_node|kmalloc_array_node|vmalloc_node|vzalloc_node|vmalloc_user|kmem_cache_alloc_node|kasprintf|kmemdup_nul|kvmemdup|devm_kasprintf|devm_kmalloc|devm_kzalloc|devm_kcalloc|devm_kmalloc_array|devm_kstrdup|devm_kmemdup|malloc|calloc|realloc|strdup|strndup)$"))

; Calls that dereference the pointers they are given.
((call_expression function: (identifier) @fn) @deref
  (#match? @fn "^(memset|memcpy|memmove|memcmp|strcpy|strncpy|strscpy|strlcpy|strcat|strncat|strlcat|strlen|strcmp|strncmp|sprintf|snprintf|scnprintf|wcscpy|wcsncpy|wcscat|wcsncat|wcslen|wcscmp|wmemset|wmemcpy|copy_from_user|copy_to_user|INIT_LIST_HEAD|spin_lock_init|mutex_init|init_waitqueue_head|atomic_set|refcount_set|kref_init)$"))

; Calls that only look at a pointer's value: they neither dereference it nor keep it.
((call_expression function: (identifier) @fn) @borrow
  (#match? @fn "^(pr_[a-z_]+|printk|printf|fprintf|dev_(err|warn|info|dbg|notice)|WARN|WARN_ON|WARN_ON_ONCE|BUG_ON|IS_ERR|IS_ERR_OR_NULL|PTR_ERR|likely|unlikely)$"))
