-- Indentation as `symbiont fmt` lays it out: one level (4 spaces) inside each open brace,
-- bracket or parenthesis; a line starting with a closing one goes back a level.
if vim.b.did_indent then
  return
end
vim.b.did_indent = true

vim.bo.autoindent = true
vim.bo.indentexpr = "v:lua.require'symbiont.indent'.expr()"
vim.bo.indentkeys = "0{,0},0),0],!^F,o,O,e"
vim.b.undo_indent = "setlocal autoindent< indentexpr< indentkeys<"
