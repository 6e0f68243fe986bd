-- The language server: its configuration for vim.lsp.config/vim.lsp.enable, a visible error when
-- its binary is missing, the code lenses, and the agent output that runs stream as log messages.
local M = {}

M.name = "symbiont"

--- Lines that runs started from this editor are waiting for: the agent's name to a function
--- taking each line the server logs for it (`[agent] line`).
M.run_listeners = {}

local function log_message(err, result, ctx)
  local agent, line = (result and result.message or ""):match("^%[([%w_]+)%] (.*)$")
  if agent and M.run_listeners[agent] then
    M.run_listeners[agent](line)
  end
  return vim.lsp.handlers["window/logMessage"](err, result, ctx)
end

--- The workspace of a buffer, as the server finds it: the directory of the nearest
--- symbiont.toml. Agent code and symbiont.toml files are served only inside one (and only a
--- file named symbiont.toml among TOML files); a Symbiont file outside any is served in the
--- nearest of the other root markers, else in its own directory.
local function root_dir(opts)
  return function(bufnr, on_dir)
    local filetype, name = vim.bo[bufnr].filetype, vim.api.nvim_buf_get_name(bufnr)
    if filetype == "toml" and vim.fs.basename(name) ~= "symbiont.toml" then
      return
    end
    local workspace = vim.fs.root(bufnr, "symbiont.toml")
    if workspace then
      on_dir(workspace)
    elseif filetype == "symbiont" then
      on_dir(vim.fs.root(bufnr, opts.server.root_markers) or vim.fs.dirname(name))
    end
  end
end

function M.capabilities()
  -- Neovim leaves dynamic registration of file watchers off on Linux; the server needs it to
  -- hear of files changed on disk (by git, a generator, another editor).
  return vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(), {
    workspace = { didChangeWatchedFiles = { dynamicRegistration = true } },
  })
end

function M.enable(opts)
  vim.lsp.config(M.name, {
    cmd = require("symbiont").server_cmd(),
    filetypes = opts.server.filetypes,
    root_markers = opts.server.root_markers,
    root_dir = root_dir(opts),
    init_options = opts.server.init_options,
    settings = opts.server.settings,
    capabilities = M.capabilities(),
    handlers = { ["window/logMessage"] = log_message },
    -- The "Run agent" lens asks for the run's input and shows its output, as :SymbiontRunAgent.
    commands = {
      ["symbiont.runAgent"] = function(command, ctx)
        require("symbiont.commands").run_lens(command, ctx)
      end,
    },
  })
  vim.lsp.enable(M.name)
  local group = vim.api.nvim_create_augroup("symbiont.lsp", { clear = true })
  if opts.codelens then
    vim.api.nvim_create_autocmd({ "LspAttach", "BufEnter", "InsertLeave", "BufWritePost" }, {
      group = group,
      callback = function(args)
        if vim.bo[args.buf].filetype == "symbiont" and M.client(args.buf) then
          vim.lsp.codelens.refresh({ bufnr = args.buf })
        end
      end,
    })
  end
end

--- Starts the server for `buf` as vim.lsp.enable would. Needed for the buffer whose FileType
--- event called setup(): vim.lsp.enable's own FileType handler did not exist yet, and before
--- VimEnter (files named on the command line) it does not look at open buffers either.
function M.start(buf)
  local config = vim.lsp.config[M.name]
  if not config or type(config.cmd) ~= "table" or vim.fn.executable(config.cmd[1]) == 0 then
    return
  end
  if not vim.tbl_contains(config.filetypes or {}, vim.bo[buf].filetype) or vim.bo[buf].buftype ~= "" then
    return
  end
  config = vim.deepcopy(config)
  config.root_dir(buf, function(root)
    config.root_dir = root
    -- After vim.lsp.enable's own (scheduled) start, if it made one: vim.lsp.start reuses it.
    vim.schedule(function()
      if vim.api.nvim_buf_is_valid(buf) then
        vim.lsp.start(config, { bufnr = buf })
      end
    end)
  end)
end

--- The server's client attached to `buf`, if any.
function M.client(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = M.name })[1]
end

M.fix_all_kind = "source.fixAll.symbiont"

--- Applies the server's fix-all action to `buf`, synchronously (for BufWritePre): every fix
--- that needs no review. Does nothing without a server or when nothing needs fixing.
function M.fix_all(buf)
  local client = M.client(buf)
  if not client then
    return
  end
  -- The whole document: to the end of its last line (a position past it may be out of range).
  local last = vim.api.nvim_buf_line_count(buf) - 1
  local text = vim.api.nvim_buf_get_lines(buf, last, last + 1, false)[1] or ""
  local last_char = vim.str_utfindex(text, client.offset_encoding)
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(buf),
    range = { start = { line = 0, character = 0 }, ["end"] = { line = last, character = last_char } },
    context = { only = { M.fix_all_kind }, diagnostics = {} },
  }
  local response = client:request_sync("textDocument/codeAction", params, 3000, buf)
  for _, action in ipairs(response and response.result or {}) do
    if action.kind == M.fix_all_kind and action.edit then
      vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding)
    end
  end
end

local told_missing = false

--- Says once, as an error, that the server's binary is missing and how to install it: Neovim
--- itself would only write it to the LSP log.
function M.check_server(buf)
  local cmd = require("symbiont").server_cmd()
  if told_missing or vim.fn.executable(cmd[1]) == 1 then
    return
  end
  told_missing = true
  vim.notify(
    ("Symbiont: the language server `%s` was not found, so %s gets no diagnostics, hover or Run agent.\n"):format(
      cmd[1],
      vim.fs.basename(vim.api.nvim_buf_get_name(buf))
    )
      .. "Install it from a Symbiont checkout with `cargo install --locked --path lsp` and `cargo install --locked --path cli`"
      .. " (into ~/.cargo/bin, which must be on PATH), or point the plugin at it:"
      .. ' require("symbiont").setup({ server = { path = "/path/to/symbiont-lsp" } }). See :checkhealth symbiont.',
    vim.log.levels.ERROR
  )
end

return M
