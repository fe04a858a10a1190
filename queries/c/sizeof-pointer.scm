; sizeof-pointer: sizeof applied to a pointer where the size of what it points to was meant.

((call_expression
   function: (identifier) @fn
   arguments: (argument_list (sizeof_expression value: (parenthesized_expression [(identifier) (field_expression)] @var)) @sizeof)) @call
  (#match? @fn "^(memcpy|memset|memmove|memcmp|kmalloc|kzalloc|kvmalloc|kvzalloc|vmalloc|vzalloc|malloc|kmemdup|devm_kmalloc|devm_kzalloc|copy_from_user|copy_to_user|strncpy|strscpy|strlcpy|snprintf)$"))

((call_expression
   function: (identifier) @fn
   arguments: (argument_list (sizeof_expression value: (identifier) @var) @sizeof)) @call
  (#match? @fn "^(memcpy|memset|memmove|memcmp|kmalloc|kzalloc|kvmalloc|kvzalloc|vmalloc|vzalloc|malloc|kmemdup|devm_kmalloc|devm_kzalloc|copy_from_user|copy_to_user|strncpy|strscpy|strlcpy|snprintf)$"))
