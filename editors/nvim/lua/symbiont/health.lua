-- :checkhealth symbiont: Neovim's version, the binaries and their versions, the tree-sitter
-- parser and its queries, and whether the server is attached to the current buffer.
local M = {}

local health = vim.health

local function version_of(path)
  local ok, result = pcall(function()
    return vim.system({ path, "--version" }, { text = true }):wait(5000)
  end)
  if not ok or result.code ~= 0 then
    return nil
  end
  return vim.trim(result.stdout)
end

local function check_binary(name, command, install, missing_is_error)
  local path = vim.fn.exepath(command)
  if path == "" then
    local report = missing_is_error and health.error or health.warn
    report(("%s not found (`%s` is not executable)"):format(name, command), { install })
    return
  end
  local version = version_of(path)
  if version then
    health.ok(("%s: %s (%s)"):format(name, version, path))
  else
    health.error(("%s at %s does not run (`%s --version` failed)"):format(name, path, path))
  end
end

function M.check()
  local symbiont = require("symbiont")
  local parser = require("symbiont.parser")
  local opts = symbiont.current()

  health.start("Neovim")
  local version = tostring(vim.version())
  if vim.fn.has("nvim-0.11") == 1 then
    health.ok("Neovim " .. version)
  else
    health.error("Neovim " .. version .. ": Symbiont needs 0.11 or later")
  end

  health.start("Binaries")
  check_binary(
    "symbiont-lsp",
    symbiont.server_cmd()[1],
    "Install it from a Symbiont checkout: `cargo install --locked --path lsp`, or set `server.path`",
    true
  )
  check_binary(
    "symbiont",
    symbiont.cli(),
    "Install it from a Symbiont checkout: `cargo install --locked --path cli` (for :SymbiontCheck, Run agent and the audit log)",
    false
  )

  -- Without inotifywait, Neovim 0.11 on Linux watches only the workspace's top directory, so the
  -- server does not hear of files changed on disk below it.
  if vim.uv.os_uname().sysname == "Linux" then
    if vim.fn.executable("inotifywait") == 1 then
      health.ok("inotifywait: " .. vim.fn.exepath("inotifywait") .. " (files changed on disk reach the server)")
    else
      health.warn(
        "inotifywait not found: files changed on disk outside Neovim reach the server only in the workspace's top directory",
        {
          "Install inotify-tools (apt-get install inotify-tools)",
        }
      )
    end
  end

  health.start("Tree-sitter parser")
  local status = parser.status(opts)
  if status == "installed" then
    health.ok("tree-sitter parser installed: " .. parser.library())
  elseif status == "outdated" then
    health.warn("tree-sitter parser outdated (the grammar changed since it was built): " .. parser.library(), {
      "Run :SymbiontInstallParser",
    })
  else
    health.warn("tree-sitter parser not installed", { "Run :SymbiontInstallParser (needs a C compiler)" })
  end
  local queries = vim.api.nvim_get_runtime_file("queries/symbiont/highlights.scm", true)
  if #queries > 0 then
    health.ok("highlight queries: " .. table.concat(queries, ", "))
  else
    health.warn("no queries/symbiont/highlights.scm on the runtimepath", { "Run :SymbiontInstallParser" })
  end
  local compiler = opts.parser.compiler or parser.compiler()
  if vim.fn.executable(compiler) == 1 then
    health.ok("C compiler: " .. vim.fn.exepath(compiler))
  else
    health.warn(("no C compiler (`%s`): the parser cannot be built"):format(compiler))
  end
  local source = vim.fs.joinpath(parser.source_dir(opts), "src", "parser.c")
  if vim.uv.fs_stat(source) then
    health.ok("grammar: " .. parser.source_dir(opts))
  else
    health.info("grammar sources not found at " .. source .. " (needed only to build the parser)")
  end

  health.start("Language server")
  local clients = vim.lsp.get_clients({ name = require("symbiont.lsp").name })
  if #clients == 0 then
    health.info("not running (it starts on the first Symbiont file)")
  end
  for _, client in ipairs(clients) do
    health.ok(("running (client %d) in %s"):format(client.id, client.root_dir or "no root"))
  end
end

return M
