; assignment-in-condition: `if (x = y)` where `==` was meant. Double parentheses, the accepted
; way to say "yes, assign", do not match.

(if_statement condition: (parenthesized_expression (assignment_expression operator: "=") @assign))
(while_statement condition: (parenthesized_expression (assignment_expression operator: "=") @assign))
(do_statement condition: (parenthesized_expression (assignment_expression operator: "=") @assign))
