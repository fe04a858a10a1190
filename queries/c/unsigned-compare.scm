; unsigned-compare: an unsigned value compared with 0 in a way that is always true or false.

((binary_expression left: (_) @value operator: ["<" ">="] right: (number_literal) @zero) @compare
  (#eq? @zero "0"))

((binary_expression left: (number_literal) @zero operator: [">" "<="] right: (_) @value) @compare
  (#eq? @zero "0"))
