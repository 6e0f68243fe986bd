; Folding: every braced body and bracketed list that may span lines, and block comments.
[
  (entry_block)
  (agent_body)
  (policy_body)
  (block)
  (match_arm_list)
  (record_expr)
  (struct_expr)
  (record_type)
  (array_expr)
  (arg_list)
  (param_list)
  (block_comment)
] @fold
