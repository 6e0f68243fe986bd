-- Symbiont for Neovim 0.11+: the language server (`symbiont-lsp --stdio`) on .sym/.symbi files,
-- on symbiont.toml and on the agent code of Symbiont workspaces; the tree-sitter parser for
-- highlighting before the server answers; commands to run agents, verify the audit log and
-- check the workspace. Documented in docs/editors.md, "Neovim".
local M = {}

--- The options, with their defaults. Everything `setup{}` is given is merged over these.
M.defaults = {
  server = {
    -- The language server's binary: a path, or a name looked up on PATH.
    path = "symbiont-lsp",
    -- The whole command, if it needs more than `{ path, "--stdio" }`.
    cmd = nil,
    -- Sent as the server's initializationOptions: `diagnostics` is "push" (the server
    -- publishes), "pull" (Neovim asks) or "both".
    init_options = { diagnostics = "push" },
    -- Sent with workspace/didChangeConfiguration.
    settings = {},
    -- Where the server attaches. Agent code and symbiont.toml attach only inside a workspace
    -- (a directory with a symbiont.toml); a .sym file outside any is served on its own.
    filetypes = { "symbiont", "toml", "python", "rust", "javascript", "typescript" },
    root_markers = { "symbiont.toml", ".git" },
  },
  -- The `symbiont` command line (:SymbiontCheck, :checkhealth): a path or a name on PATH; by
  -- default the one beside the server's binary, else `symbiont` on PATH.
  cli = nil,
  parser = {
    -- Compile and install the tree-sitter parser when the first Symbiont file opens, if it is
    -- not installed or the grammar changed (:SymbiontInstallParser does it on demand).
    install = true,
    -- The grammar's directory (holding src/parser.c and queries/); by default the
    -- editors/tree-sitter-symbiont beside this plugin in the Symbiont repository.
    source = nil,
    -- The C compiler: by default $CC, else `cc`.
    compiler = nil,
  },
  -- Refresh the "Run agent" code lenses above each agent.
  codelens = true,
  -- Before a Symbiont file is written, apply every fix that needs no review
  -- (the server's source.fixAll.symbiont, as `symbiont check --fix`).
  fix_on_save = false,
  -- Buffer-local mappings in Symbiont files: false (none, the default), true (the defaults
  -- below) or a table of { action = lhs } (an lhs of false leaves that action unmapped).
  keymaps = false,
}

M.default_keymaps = {
  run_agent = "<localleader>r",
  verify_audit = "<localleader>v",
  check = "<localleader>c",
}

M.options = nil

--- Configures the plugin and enables the language server. Calling it is optional: the first
--- Symbiont file opened calls it with the defaults.
function M.setup(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- A plugin manager that adds editors/nvim to the runtimepath only when it loads the plugin
  -- (lazy.nvim with `config`) has not sourced plugin/symbiont.lua: the commands are defined there.
  if not vim.g.loaded_symbiont then
    vim.cmd.runtime("plugin/symbiont.lua")
  end
  require("symbiont.lsp").enable(M.options)
  return M.options
end

function M.config()
  return M.options or M.setup()
end

--- The options in force, without setting anything up (for :checkhealth).
function M.current()
  return M.options or M.defaults
end

--- The server's command as configured.
function M.server_cmd()
  local server = M.current().server
  return server.cmd or { server.path, "--stdio" }
end

--- The `symbiont` binary: the option, else beside the server, else on PATH.
function M.cli()
  local opts = M.current()
  if opts.cli then
    return opts.cli
  end
  local server = vim.fn.exepath(M.server_cmd()[1])
  if server ~= "" then
    local sibling = vim.fs.joinpath(vim.fs.dirname(server), "symbiont")
    if vim.fn.executable(sibling) == 1 then
      return sibling
    end
  end
  return "symbiont"
end

local parser_state = nil -- nil (not looked at), "building", "ready" or "unavailable"
local waiting = {}

local function start_highlighting(buf)
  local parser = require("symbiont.parser")
  if parser_state == "ready" then
    parser.start(buf)
  elseif parser_state == "building" then
    table.insert(waiting, buf)
  elseif parser_state == nil then
    local opts = M.config()
    local status = parser.status(opts)
    if status == "installed" or (status == "outdated" and not opts.parser.install) then
      parser_state = "ready"
      parser.start(buf)
    elseif not opts.parser.install then
      parser_state = "unavailable"
    else
      parser_state, waiting = "building", { buf }
      parser.install(opts, function(err)
        if err then
          parser_state = "unavailable"
          vim.notify("Symbiont: no tree-sitter highlighting: " .. err, vim.log.levels.WARN)
          return
        end
        parser_state = "ready"
        for _, b in ipairs(waiting) do
          parser.start(b)
        end
        waiting = {}
      end)
    end
  end
end

local function map_keys(buf)
  local keymaps = M.config().keymaps
  if not keymaps then
    return
  end
  local lhs = vim.tbl_extend("force", M.default_keymaps, type(keymaps) == "table" and keymaps or {})
  local commands = require("symbiont.commands")
  for action, key in pairs(lhs) do
    if key and commands[action] then
      vim.keymap.set("n", key, function()
        commands[action]({ args = "" })
      end, { buffer = buf, desc = "Symbiont: " .. action:gsub("_", " ") })
    end
  end
end

local function fix_on_save(buf)
  if not M.config().fix_on_save then
    return
  end
  vim.api.nvim_create_autocmd("BufWritePre", {
    group = vim.api.nvim_create_augroup("symbiont.fix_on_save." .. buf, { clear = true }),
    buffer = buf,
    callback = function()
      require("symbiont.lsp").fix_all(buf)
    end,
  })
end

--- Called by the ftplugin for each Symbiont buffer: highlighting, the server, mappings.
function M.attach(buf)
  local first = M.options == nil
  M.config()
  start_highlighting(buf)
  local lsp = require("symbiont.lsp")
  lsp.check_server(buf)
  if first then
    lsp.start(buf)
  end
  map_keys(buf)
  fix_on_save(buf)
end

--- For :SymbiontInstallParser and tests: forget what was decided about the parser.
function M.parser_installed()
  parser_state = "ready"
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].filetype == "symbiont" then
      require("symbiont.parser").start(buf)
    end
  end
end

return M
