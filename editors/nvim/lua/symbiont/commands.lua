-- The user commands: :SymbiontRunAgent, :SymbiontVerifyAudit, :SymbiontCheck,
-- :SymbiontInstallParser. Each takes the table a user command receives (`args.args`).
local M = {}

local lsp = require("symbiont.lsp")

local function fail(message)
  vim.notify("Symbiont: " .. message, vim.log.levels.ERROR)
end

local function client_or_fail(buf)
  local client = lsp.client(buf)
  if not client then
    fail("the language server is not running for this buffer (:checkhealth symbiont)")
  end
  return client
end

local function contains(range, pos)
  local s, e = range.start, range["end"]
  return (pos.line > s.line or (pos.line == s.line and pos.character >= s.character))
    and (pos.line < e.line or (pos.line == e.line and pos.character <= e.character))
end

--- The agents of `buf` as the server's code lenses name them: { name, uri } in file order.
local function agents_of(client, buf)
  local params = { textDocument = vim.lsp.util.make_text_document_params(buf) }
  local response, err = client:request_sync("textDocument/codeLens", params, 5000, buf)
  if not response or response.err then
    return nil, "asking the server for the file's agents failed: " .. vim.inspect(err or response.err)
  end
  local agents = {}
  for _, lens in ipairs(response.result or {}) do
    local command = lens.command
    if command and command.command == "symbiont.runAgent" then
      table.insert(agents, { name = command.arguments[1], uri = command.arguments[2], range = lens.range })
    end
  end
  return agents
end

--- The agent whose definition contains the cursor, if any.
local function agent_at_cursor(client, buf, agents)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local pos = { line = cursor[1] - 1, character = cursor[2] }
  local params = { textDocument = vim.lsp.util.make_text_document_params(buf) }
  local response = client:request_sync("textDocument/documentSymbol", params, 5000, buf)
  for _, symbol in ipairs(response and response.result or {}) do
    if symbol.range and contains(symbol.range, pos) then
      for _, agent in ipairs(agents) do
        if agent.name == symbol.name then
          return agent
        end
      end
    end
  end
end

--- The buffer a run's output goes to, shown in a split (one per agent, cleared for each run).
local function output_buffer(agent)
  local name = "symbiont://run/" .. agent
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.bo[buf].filetype = "symbiontrun"
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, {})
  if vim.fn.bufwinid(buf) == -1 then
    local current = vim.api.nvim_get_current_win()
    vim.cmd("botright 12split")
    vim.api.nvim_win_set_buf(0, buf)
    vim.api.nvim_set_current_win(current)
  end
  return buf
end

local function append(buf, lines)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local count = vim.api.nvim_buf_line_count(buf)
  local empty = count == 1 and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] == ""
  vim.api.nvim_buf_set_lines(buf, empty and 0 or count, -1, false, lines)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

--- Runs `agent` through the server's `symbiont.runAgent` with `input` (JSON text, or "" for
--- none); its output and result go to the run's buffer, which is returned.
function M.execute_run(client, agent, input)
  local out = output_buffer(agent.name)
  append(out, { ("Running agent %s…"):format(agent.name) })
  lsp.run_listeners[agent.name] = function(line)
    append(out, { line })
  end
  local arguments = { agent.name, agent.uri }
  if input ~= "" then
    table.insert(arguments, vim.json.decode(input))
  end
  client:request(
    "workspace/executeCommand",
    { command = "symbiont.runAgent", arguments = arguments },
    function(err, result)
      lsp.run_listeners[agent.name] = nil
      if err then
        append(out, { "", "Did not run: " .. (err.message or vim.inspect(err)) })
        return
      end
      if type(result) ~= "table" then
        append(out, { "", "The server answered without a result." })
        return
      end
      local function field(value)
        return (value == nil or value == vim.NIL) and "?" or tostring(value)
      end
      local seqs = type(result.audit_seqs) == "table" and result.audit_seqs or {}
      append(out, {
        "",
        ("Agent %s %s (exit %s) at Tier%s in %s ms"):format(
          agent.name,
          field(result.state),
          field(result.exit_code),
          field(result.tier),
          field(result.duration_ms)
        ),
        ("Audit entries %s–%s: %s"):format(field(seqs[1]), field(seqs[2]), field(result.audit_uri)),
      })
    end
  )
  return out
end

local function ask_input_and_run(client, agent)
  vim.ui.input({ prompt = ("Input for agent %s (JSON, empty for none): "):format(agent.name) }, function(input)
    if input == nil then
      return
    end
    input = vim.trim(input)
    if input ~= "" then
      local ok, err = pcall(vim.json.decode, input)
      if not ok then
        return fail(("the input is not JSON: %s"):format(err))
      end
    end
    M.execute_run(client, agent, input)
  end)
end

--- The "Run agent" code lens (`vim.lsp.codelens.run()`): its arguments name the agent.
function M.run_lens(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local args = command.arguments or {}
  if client and type(args[1]) == "string" and type(args[2]) == "string" then
    ask_input_and_run(client, { name = args[1], uri = args[2] })
  end
end

function M.run_agent(args)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_or_fail(buf)
  if not client then
    return
  end
  local agents, err = agents_of(client, buf)
  if not agents then
    return fail(err)
  end
  if #agents == 0 then
    return fail("this file defines no agent")
  end
  if args and args.args ~= nil and args.args ~= "" then
    for _, agent in ipairs(agents) do
      if agent.name == args.args then
        return ask_input_and_run(client, agent)
      end
    end
    local names = vim.tbl_map(function(a)
      return a.name
    end, agents)
    return fail(("no agent `%s` in this file (it defines %s)"):format(args.args, table.concat(names, ", ")))
  end
  local here = agent_at_cursor(client, buf, agents)
  if here then
    return ask_input_and_run(client, here)
  end
  vim.ui.select(agents, {
    prompt = "Run agent",
    format_item = function(agent)
      return ("%s (line %d)"):format(agent.name, agent.range.start.line + 1)
    end,
  }, function(agent)
    if agent then
      ask_input_and_run(client, agent)
    end
  end)
end

function M.verify_audit(_, on_done)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_or_fail(buf)
  if not client then
    return
  end
  -- The server shows the verdict itself (window/showMessage); only a failure to ask is ours.
  local arguments = { vim.uri_from_bufnr(buf) }
  client:request(
    "workspace/executeCommand",
    { command = "symbiont.verifyAudit", arguments = arguments },
    function(err, result)
      if err then
        fail("verifying the audit log failed: " .. (err.message or vim.inspect(err)))
      end
      if on_done then
        on_done(err, result)
      end
    end
  )
end

local qf_type = { error = "E", warning = "W", info = "I", hint = "N" }

--- The quickfix items of a `symbiont check --format json` report run in `root`.
function M.quickfix_items(report, root)
  local items = {}
  for _, d in ipairs(report.diagnostics or {}) do
    table.insert(items, {
      filename = vim.fs.joinpath(root, d.path),
      lnum = d.range.start.line,
      col = d.range.start.column,
      end_lnum = d.range["end"].line,
      end_col = d.range["end"].column,
      type = qf_type[d.severity] or "E",
      nr = tonumber((d.code or ""):match("%d+")),
      text = ("%s %s"):format(d.code, d.message),
    })
  end
  return items
end

--- `symbiont check --format json` on the workspace of the current buffer, into the quickfix
--- list; `on_done(items)` (tests) once it is there.
function M.check(_, on_done)
  local buf = vim.api.nvim_get_current_buf()
  local root = vim.fs.root(buf, { "symbiont.toml", ".git" }) or vim.fn.getcwd()
  local cli = require("symbiont").cli()
  if vim.fn.executable(cli) == 0 then
    return fail(
      ("`%s` was not found: install it with `cargo install --locked --path cli` from a Symbiont checkout"):format(cli)
    )
  end
  vim.system({ cli, "check", "--format", "json", "." }, { cwd = root, text = true }, function(result)
    vim.schedule(function()
      -- Exit 0: clean, 1: errors found; anything else is a failure to check at all.
      local ok, report = pcall(vim.json.decode, result.stdout or "")
      if (result.code ~= 0 and result.code ~= 1) or not ok then
        return fail(("`symbiont check` failed (exit %d): %s"):format(result.code, vim.trim(result.stderr or "")))
      end
      local items = M.quickfix_items(report, root)
      vim.fn.setqflist({}, " ", { title = "symbiont check " .. root, items = items })
      local s = report.summary
      vim.notify(
        ("Symbiont: %d files checked: %d errors, %d warnings"):format(report.files_checked, s.errors, s.warnings),
        s.errors > 0 and vim.log.levels.WARN or vim.log.levels.INFO
      )
      if #items > 0 then
        vim.cmd("copen")
      end
      if on_done then
        on_done(items)
      end
    end)
  end)
end

function M.install_parser(_, on_done)
  local symbiont = require("symbiont")
  local parser = require("symbiont.parser")
  vim.notify("Symbiont: compiling the tree-sitter parser…", vim.log.levels.INFO)
  parser.install(symbiont.config(), function(err)
    if err then
      fail("installing the tree-sitter parser: " .. err)
    else
      symbiont.parser_installed()
      vim.notify("Symbiont: tree-sitter parser installed: " .. parser.library(), vim.log.levels.INFO)
    end
    if on_done then
      on_done(err)
    end
  end)
end

return M
