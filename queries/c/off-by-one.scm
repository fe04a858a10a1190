; off-by-one: a loop that runs to ARRAY_SIZE() inclusive and indexes the array with it, or an
; index equal to the array's size.

(for_statement
  condition: (binary_expression
    left: (identifier) @index
    operator: "<="
    right: (call_expression
      function: (identifier) @fn
      arguments: (argument_list . (_) @array))) @compare
  body: (_) @body
  (#eq? @fn "ARRAY_SIZE"))

(subscript_expression
  argument: [(identifier) (field_expression)] @array
  index: (sizeof_expression value: (parenthesized_expression [(identifier) (field_expression)] @size.of))) @subscript

(subscript_expression
  argument: (identifier) @array
  index: (call_expression
    function: (identifier) @fn
    arguments: (argument_list . (identifier) @size.of))
  (#eq? @fn "ARRAY_SIZE")) @subscript
