; Scopes, definitions and references (nvim-treesitter's captures, which Helix reads too).

; Items define names for the whole file; bodies and lambdas open scopes for their bindings.
(source_file) @local.scope
(function) @local.scope
(block) @local.scope
(lambda_expr) @local.scope
(match_arm) @local.scope
(catch_clause) @local.scope
(for_expr) @local.scope

(agent name: (name) @local.definition.type)
(policy name: (name) @local.definition.type)
(type_def name: (name) @local.definition.type)
(function name: (name) @local.definition.function)

(param name: (name) @local.definition.parameter)
(lambda_params (name) @local.definition.parameter)
(catch_clause name: (name) @local.definition.var)
(ident_pat (name) @local.definition.var)

(path_expr . (name_ref) @local.reference)
(extends_clause (name_ref) @local.reference)
(path_type . (name_ref) @local.reference)
