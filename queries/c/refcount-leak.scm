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

; Lookups that return a new reference on a node, or NULL when they find none. Held by the local
; the result is assigned to; a path that returns an error still holding it is reported only
; where the function puts it on another path after taking it (the function's own code says the
; put is its business).
((call_expression function: (identifier) @fn) @resource.lookup
  (#match? @fn "^(of_parse_phandle|of_get_child_by_name|of_get_available_child_by_name|of_get_compatible_child|of_get_parent|of_get_next_parent|of_get_next_child|of_get_next_available_child|fwnode_get_next_parent|of_find_node_by_name|of_find_node_by_type|of_find_node_by_path|of_find_node_opts_by_path|of_find_node_by_phandle|of_find_compatible_node|of_find_matching_node|of_find_matching_node_and_match|of_find_node_with_property|of_graph_get_remote_node|of_graph_get_remote_port_parent|of_graph_get_remote_port|of_graph_get_port_parent|of_graph_get_endpoint_by_regs|of_graph_get_remote_endpoint|of_get_cpu_node|of_cpu_device_node_get|of_node_get|fwnode_get_named_child_node|device_get_named_child_node|fwnode_get_parent|fwnode_graph_get_remote_endpoint|fwnode_graph_get_remote_port_parent)$"))

; The same releases, for the walk.
((call_expression function: (identifier) @fn) @resource.put
  (#match? @fn "^(of_node_put|fwnode_handle_put)$"))
