-- Symbiont files: comments and indentation as `symbiont fmt` writes them (4 spaces), then the
-- tree-sitter highlighting and the language server.
if vim.b.did_ftplugin then
  return
end
vim.b.did_ftplugin = true

vim.bo.commentstring = "// %s"
vim.bo.comments = "s1:/*,mb:*,ex:*/,://"
vim.bo.expandtab = true
vim.bo.shiftwidth = 4
vim.bo.softtabstop = 4
vim.bo.tabstop = 4
-- Continue comments on Enter and `o`, wrap comments at 'textwidth', join comment lines cleanly.
vim.opt_local.formatoptions:remove("t")
vim.opt_local.formatoptions:append("croqj")

vim.b.undo_ftplugin = "setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< tabstop< formatoptions<"

require("symbiont").attach(vim.api.nvim_get_current_buf())
