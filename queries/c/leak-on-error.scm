; leak-on-error: memory the function owns, not freed or handed on when an error is returned.

; Allocations the caller owns. devm_* allocations are managed by the device and are not here.
((call_expression function: (identifier) @fn) @alloc
  (#match? @fn "^(kmalloc|kzalloc|kcalloc|kmalloc_array|kmalloc_node|kzalloc_node|kcalloc_node|kvmalloc|kvzalloc|kvcalloc|kvmalloc_array|vmalloc|vzalloc|vmalloc_array|vcalloc|kmemdup|kstrdup|kstrndup|kmem_cache_alloc|kmem_cache_zalloc|kvmalloc_node|kvzalloc_node|kmalloc_array_node|vmalloc_node|vzalloc_node|vmalloc_user|kmem_cache_alloc_node|kasprintf|kmemdup_nul|kvmemdup|memdup_user|vmemdup_user|strndup_user|malloc|calloc|realloc|strdup|strndup)$"))

; Streams the caller opened and must close.
((call_expression function: (identifier) @fn) @alloc
  (#match? @fn "^(fopen|fdopen|tmpfile)$"))

; Socket buffers the caller owns until it frees them or hands them to the stack.
((call_expression function: (identifier) @fn) @alloc
  (#match? @fn "^(alloc_skb|netdev_alloc_skb|netdev_alloc_skb_ip_align|dev_alloc_skb|napi_alloc_skb|__netdev_alloc_skb|__napi_alloc_skb|__dev_alloc_skb)$"))

; Frees: the freed pointer is the first argument, or the second for kmem_cache_free.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @free.arg)) @free
  (#match? @fn "^(kfree|kvfree|vfree|kfree_sensitive|kvfree_sensitive|kzfree|free|fclose)$"))
((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @free.arg)) @free
  (#eq? @fn "kmem_cache_free"))
; A socket buffer is freed, or handed to the stack, which frees it.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @free.arg)) @free
  (#match? @fn "^(kfree_skb|kfree_skb_reason|consume_skb|dev_kfree_skb|dev_kfree_skb_any|dev_kfree_skb_irq|dev_consume_skb_any|dev_consume_skb_irq|napi_consume_skb|netif_rx|netif_receive_skb|dev_queue_xmit)$"))
((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @free.arg)) @free
  (#eq? @fn "napi_gro_receive"))

; Calls that use a buffer without taking ownership of it. Any other call that is given the
; pointer (list_add, platform_set_drvdata, a helper) may keep it, so the pointer escapes.
((call_expression function: (identifier) @fn) @borrow
  (#match? @fn "^(memset|memcpy|memmove|memcmp|strcpy|strncpy|strscpy|strlcpy|strcat|strncat|strlcat|strlen|strcmp|strncmp|sprintf|snprintf|scnprintf|sscanf|copy_from_user|copy_to_user|pr_[a-z_]+|printk|printf|fprintf|dev_(err|warn|info|dbg|notice)|WARN|WARN_ON|WARN_ON_ONCE|BUG_ON|IS_ERR|IS_ERR_OR_NULL|PTR_ERR|likely|unlikely)$"))

; Helpers whose name says they read from or fill a buffer (foo_hw_read, fill_header,
; parse_reply): they use the pointer during the call and do not keep it. This is a naming
; heuristic; the model (issue 3) judges the calls it cannot decide.
((call_expression function: (identifier) @fn) @borrow
  (#match? @fn "^print|(^|_)(read|write|fill|copy|parse|get|fetch|recv|receive|dump|format|check|verify|validate|compute|calc|decode|encode|scan|crc|checksum|print|show)(_|$)"))

; Resources other than memory, named by the first argument: acquisitions that return 0 when
; they took it (a clock enabled, a regulator, an IRQ, a runtime-PM reference) ...
((call_expression function: (identifier) @fn) @resource.take
  (#match? @fn "^(clk_prepare_enable|clk_enable|clk_prepare|clk_bulk_prepare_enable|regulator_enable|regulator_bulk_enable|pci_enable_device|pci_enable_device_mem|request_irq|request_threaded_irq|pm_runtime_resume_and_get)$"))
; ... this one takes it whatever it returns (`pm_runtime_get_sync` counts the reference even
; when it fails) ...
((call_expression function: (identifier) @fn) @resource.take_always
  (#eq? @fn "pm_runtime_get_sync"))
; ... and their releases. A path that returns an error holding one is reported only where the
; function releases it on another path after taking it. (Reset lines are left out: asserting a
; reset before deasserting it is a pulse, not a release; device references are for a
; reference-count rule.)
((call_expression function: (identifier) @fn) @resource.put
  (#match? @fn "^(clk_disable_unprepare|clk_disable|clk_unprepare|clk_bulk_disable_unprepare|regulator_disable|regulator_bulk_disable|pci_disable_device|free_irq|pm_runtime_put|pm_runtime_put_sync|pm_runtime_put_noidle|pm_runtime_put_autosuspend|pm_runtime_put_sync_autosuspend|pm_runtime_put_sync_suspend)$"))

; `p = realloc(p, n)`: when the call fails it returns NULL and the old block stays allocated,
; with its only pointer overwritten.
((assignment_expression
   left: (_) @realloc.target
   right: [(call_expression function: (identifier) @fn arguments: (argument_list . (_) @realloc.arg))
           (cast_expression value: (call_expression function: (identifier) @fn arguments: (argument_list . (_) @realloc.arg)))]) @realloc
  (#match? @fn "^(realloc|reallocarray|krealloc|krealloc_array|kvrealloc)$"))
