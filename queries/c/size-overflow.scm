; size-overflow: an allocation size computed as a product, which can overflow and allocate less
; than the caller will use.

((call_expression
   function: (identifier) @fn
   arguments: (argument_list . (binary_expression operator: "*") @size)) @call
  (#match? @fn "^(kmalloc|kzalloc|kmalloc_node|kzalloc_node|kvmalloc|kvzalloc|vmalloc|vzalloc|malloc)$"))

((call_expression
   function: (identifier) @fn
   arguments: (argument_list . (_) . (binary_expression operator: "*") @size)) @call
  (#match? @fn "^(devm_kmalloc|devm_kzalloc)$"))
