; refcount-leak: a reference the function holds is not dropped when it leaves.

; An iterator macro over device-tree or firmware nodes (`for_each_child_of_node(np, child) {`),
; masked as a `while` over its arguments for the grammar: it holds a reference on its cursor for
; the current iteration. Which macros, and which argument is the cursor, is read from the source
; by the rule (its table `ITERATORS`), since the masked name is not in the tree.
((while_statement
   condition: (parenthesized_expression (comma_expression))) @iterator)
; ... or over one argument (`for_each_of_cpu_node(cpu)`; plain `while (x)` loops match too and
; are told apart by name).
((while_statement
   condition: (parenthesized_expression (identifier))) @iterator)

; Releases of a node reference; the node is the first argument.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @put.arg)) @put
  (#match? @fn "^(of_node_put|fwnode_handle_put)$"))
