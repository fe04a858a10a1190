; use-after-free: a pointer dereferenced or passed on after it was freed on the same path.

; Frees: the freed pointer is the first argument, or the second for kmem_cache_free.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @free.arg)) @free
  (#match? @fn "^(kfree|kvfree|vfree|kfree_sensitive|kvfree_sensitive|kzfree|free)$"))
((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @free.arg)) @free
  (#eq? @fn "kmem_cache_free"))

; Socket buffers: freed, or handed to the network stack, which frees or keeps it as it likes
; (`netif_rx(skb); stats->rx_bytes += skb->len;` reads memory that may be gone).
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @free.arg)) @free
  (#match? @fn "^(kfree_skb|consume_skb|dev_kfree_skb|dev_kfree_skb_any|dev_kfree_skb_irq|dev_consume_skb_any|dev_consume_skb_irq|napi_consume_skb|netif_rx|netif_receive_skb|dev_queue_xmit)$"))
((call_expression function: (identifier) @fn arguments: (argument_list . (_) . (_) @free.arg)) @free
  (#match? @fn "^(napi_gro_receive)$"))

; Calls that only print or test a pointer's value: passing a freed pointer to them is harmless.
((call_expression function: (identifier) @fn) @borrow
  (#match? @fn "^(pr_[a-z_]+|printk|printf|fprintf|dev_(err|warn|info|dbg|notice)|WARN|WARN_ON|WARN_ON_ONCE|BUG_ON|IS_ERR|IS_ERR_OR_NULL|PTR_ERR|likely|unlikely|kmemleak_[a-z_]+)$"))
