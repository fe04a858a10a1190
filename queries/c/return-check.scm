; return-check: a C library call whose result says whether it failed, with that result thrown
; away where the failure leaves the data unset, or tested against a value it never returns on
; failure.

; Results the C library marks warn_unused_result: on failure the buffer holds nothing read.
((expression_statement (call_expression function: (identifier) @fn) @call) @discarded
  (#match? @fn "^(fgets|fgetws|fread|fscanf|scanf|getline|getdelim)$"))

; A result compared with a constant: which comparisons are wrong depends on the callee.
((binary_expression
   left: (call_expression function: (identifier) @fn) @call
   right: (_) @constant) @compare
  (#match? @fn "^(fgets|fgetws|fopen|fdopen|tmpfile|fread|fwrite|fputs|fputc|putc|puts|putchar|fputws|fputwc|putwc|fprintf|printf|vfprintf|vprintf|snprintf|vsnprintf|remove|rename|fclose|fflush)$"))
