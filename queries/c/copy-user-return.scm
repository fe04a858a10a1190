; copy-user-return: copy_from_user()/copy_to_user() return the number of bytes NOT copied, never
; a negative error; returning that count or comparing it with 0 is a bug.

((return_statement (call_expression function: (identifier) @fn) @call) @return
  (#match? @fn "^(copy_from_user|copy_to_user|__copy_from_user|__copy_to_user|copy_in_user|raw_copy_from_user|raw_copy_to_user)$"))

((binary_expression
   left: (call_expression function: (identifier) @fn) @call
   operator: "<"
   right: (number_literal) @zero) @compare
  (#match? @fn "^(copy_from_user|copy_to_user|__copy_from_user|__copy_to_user|copy_in_user|raw_copy_from_user|raw_copy_to_user)$")
  (#eq? @zero "0"))

((assignment_expression
   left: (identifier) @var
   right: (call_expression function: (identifier) @fn) @call) @assign
  (#match? @fn "^(copy_from_user|copy_to_user|__copy_from_user|__copy_to_user|copy_in_user|raw_copy_from_user|raw_copy_to_user)$"))

((init_declarator
   declarator: (identifier) @var
   value: (call_expression function: (identifier) @fn) @call) @assign
  (#match? @fn "^(copy_from_user|copy_to_user|__copy_from_user|__copy_to_user|copy_in_user|raw_copy_from_user|raw_copy_to_user)$"))
