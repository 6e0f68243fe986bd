; Highlighting for Symbiont (.sym/.symbi). Capture names are Neovim's (nvim-treesitter's list);
; README.md maps the few Helix spells differently. General patterns come first and specific ones
; after them: Neovim, Helix (since 24.03) and tree-sitter-highlight all let a later pattern win.

(line_comment) @comment
(block_comment) @comment

(string) @string
(secret_ref) @string.special.url
(int) @number
(float) @number.float
(quantity) @number
(boolean) @boolean
(null) @constant.builtin

; Names in general, then the roles that make them more specific.
(name_ref) @variable
(name) @variable

[
  "metadata"
  "schedule"
  "channel"
  "memory"
  "webhook"
  "agent"
  "policy"
  "type"
  "extends"
  "with"
] @keyword

"function" @keyword.function
"let" @keyword
"in" @keyword.operator
"not" @keyword.operator
[
  "if"
  "else"
  "match"
] @keyword.conditional
[
  "for"
  "while"
  (break_expr)
  (continue_expr)
] @keyword.repeat
"return" @keyword.return
[
  "try"
  "catch"
] @keyword.exception

; The five rule kinds.
(rule
  kind: _ @keyword.directive)

(wildcard_pat) @variable.builtin

[
  "=" "+=" "-=" "*=" "/=" "%="
  "||" "&&" "==" "!=" "<" ">" "<=" ">="
  "+" "-" "*" "/" "%" "!"
  "->" "=>" "?"
] @operator

[ "(" ")" "[" "]" "{" "}" ] @punctuation.bracket
[ "," ";" ":" "::" "." ] @punctuation.delimiter

(generic_args [ "<" ">" ] @punctuation.bracket)

; Definitions.
(agent name: (name) @type.definition)
(policy name: (name) @type.definition)
(type_def name: (name) @type.definition)
(schedule name: (name) @type.definition)
(channel name: (name) @type.definition)
(memory name: (name) @type.definition)
(webhook name: (name) @type.definition)
(function name: (name) @function)
(extends_clause (name_ref) @type)

; Types.
(path_type (name_ref) @type)
((path_type (name_ref) @type.builtin)
  (#any-of? @type.builtin "String" "int" "float" "bool" "JSON" "List" "Map" "Result"))

; Parameters and bindings.
(param name: (name) @variable.parameter)
(lambda_params (name) @variable.parameter)
(catch_clause name: (name) @variable.parameter)
(ident_pat (name) @variable)

; Keys, fields and attributes.
(entry key: (name) @property)
(record_field key: (name) @property)
(field_def name: (name) @property)
(field_expr field: (name_ref) @variable.member)
(agent_field name: [(name) "capabilities"] @property)
(with_attr name: (name) @attribute)
(named_arg name: (name) @variable.parameter)
(qualifier word: (name) @keyword.modifier)

; Paths: `Kind::Primary`, `Tier2`.
(path_expr (name_ref) @type
  (#match? @type "^[A-Z]"))
(tuple_struct_pat path: (path_expr (name_ref) @type))

; Calls.
(call_expr function: (path_expr (name_ref) @function.call .))
(call_expr function: (field_expr field: (name_ref) @function.method.call))

; Operation names: what an allow or deny rule names (alone, called, listed, or first in a
; phrase), and what an agent's capabilities list declares.
(rule
  kind: ["allow" "deny"]
  body: [
    (string) @function.builtin
    (path_expr (name_ref) @function.builtin)
    (call_expr function: (path_expr (name_ref) @function.builtin))
    (array_expr [(string) (path_expr (name_ref))] @function.builtin)
  ])
(rule
  kind: ["allow" "deny"]
  body: (phrase
    .
    [
      (string) @function.builtin
      (path_expr (name_ref) @function.builtin)
      (call_expr function: (path_expr (name_ref) @function.builtin))
      (array_expr [(string) (path_expr (name_ref))] @function.builtin)
    ]))
(agent_field
  name: "capabilities"
  value: (array_expr (string) @function.builtin))
