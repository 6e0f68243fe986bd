-- Symbiont for Neovim 0.11+: `symbiont-lsp --stdio` on .sym/.symbi files and on the agent code
-- of workspaces that have a symbiont.toml. Put this file on your runtimepath (for example
-- ~/.config/nvim/plugin/symbiont.lua) or `dofile` it from init.lua.

vim.filetype.add({ extension = { sym = "symbiont", symbi = "symbiont" } })

vim.lsp.config("symbiont", {
  cmd = { "symbiont-lsp", "--stdio" },
  filetypes = { "symbiont", "toml", "python", "rust", "javascript", "typescript" },
  -- The workspace is the directory of the nearest symbiont.toml. Agent code and symbiont.toml
  -- attach only inside one; a .sym file outside any is served on its own.
  root_dir = function(bufnr, on_dir)
    local root = vim.fs.root(bufnr, { "symbiont.toml" })
    if root then
      on_dir(root)
    elseif vim.bo[bufnr].filetype == "symbiont" then
      on_dir(vim.fs.dirname(vim.api.nvim_buf_get_name(bufnr)))
    end
  end,
  -- "push" (the server publishes), "pull" (Neovim asks) or "both".
  init_options = { diagnostics = "push" },
})

vim.lsp.enable("symbiont")

-- Code lenses ("Run agent" above each agent): refresh them, and run the one under the cursor
-- with :SymbiontRunAgent (the agent's output arrives as log messages, `:LspLog`; the result as a
-- message). :SymbiontVerifyAudit verifies the workspace's audit log.
vim.api.nvim_create_autocmd({ "LspAttach", "BufEnter", "InsertLeave", "BufWritePost" }, {
  pattern = { "*.sym", "*.symbi" },
  callback = function(args)
    if #vim.lsp.get_clients({ bufnr = args.buf, name = "symbiont" }) > 0 then
      vim.lsp.codelens.refresh({ bufnr = args.buf })
    end
  end,
})
vim.api.nvim_create_user_command("SymbiontRunAgent", function()
  vim.lsp.codelens.run()
end, { desc = "Run the agent under the cursor (Symbiont)" })
vim.api.nvim_create_user_command("SymbiontVerifyAudit", function()
  local client = vim.lsp.get_clients({ bufnr = 0, name = "symbiont" })[1]
  if client then
    client:exec_cmd({ title = "Verify audit log", command = "symbiont.verifyAudit", arguments = { vim.uri_from_bufnr(0) } })
  end
end, { desc = "Verify the workspace's audit log (Symbiont)" })
