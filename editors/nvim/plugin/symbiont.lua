-- Symbiont for Neovim 0.11+. Loaded at startup, so it only defines commands: the language server,
-- the tree-sitter parser and everything else start when the first Symbiont file opens (or when
-- `require("symbiont").setup{}` is called).
if vim.g.loaded_symbiont then
  return
end
vim.g.loaded_symbiont = true

local function command(name, method, opts)
  vim.api.nvim_create_user_command(name, function(args)
    require("symbiont.commands")[method](args)
  end, opts)
end

command("SymbiontRunAgent", "run_agent", {
  nargs = "?",
  desc = "Run an agent of this file (the one under the cursor, or pick one), asking for its input",
})
command("SymbiontVerifyAudit", "verify_audit", { desc = "Verify the workspace's audit log" })
command("SymbiontCheck", "check", { desc = "symbiont check on the workspace, into the quickfix list" })
command("SymbiontInstallParser", "install_parser", { desc = "Compile and install the tree-sitter parser" })
