; Indentation (nvim-treesitter's captures; README.md gives Helix's): the inside of every braced
; body and bracketed list is indented one level, and its closing bracket goes back.
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
  (generic_args)
] @indent.begin

; A rule's guard and a `with` block's attributes continue on the lines below them.
(guard) @indent.begin
(with_attr_list) @indent.begin

[
  "}"
  "]"
  ")"
] @indent.branch @indent.end

(block_comment) @indent.auto
(string) @indent.ignore
