-- The Neovim plugin end to end, headless, against the real symbiont-lsp and symbiont:
--
--   SYMBIONT_TEST_WORKSPACE=/tmp/copy-of-examples nvim --headless -u NONE -i NONE -n \
--     -c "luafile editors/nvim/test/run.lua"
--
-- (tests/it/nvim.rs makes the workspace, puts the binaries on PATH and points the XDG
-- directories at a temporary directory.) Every check prints "ok NAME" or "FAIL NAME: why"; any
-- failure exits 1 (`cquit 1`), success 0. SYMBIONT_TEST_SKIP_RUN=1 leaves out the checks that
-- need the sandbox.

local plugin =
  vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p"))))
local workspace = assert(vim.env.SYMBIONT_TEST_WORKSPACE, "SYMBIONT_TEST_WORKSPACE is not set")
local failures, started = 0, vim.uv.hrtime()

local function say(line)
  io.stdout:write(line .. "\n")
  io.stdout:flush()
end

--- Runs one check; an error fails it (and the run) without stopping the others.
local function check(name, fn)
  local t0 = vim.uv.hrtime()
  local ok, err = xpcall(fn, debug.traceback)
  local ms = math.floor((vim.uv.hrtime() - t0) / 1e6)
  if ok then
    say(("ok   %s (%d ms)"):format(name, ms))
  else
    failures = failures + 1
    say(("FAIL %s (%d ms): %s"):format(name, ms, err))
  end
end

--- Waits until `cond()` is truthy (processing events meanwhile) and returns its value.
local function wait_for(what, cond, timeout)
  local value
  local done = vim.wait(timeout or 10000, function()
    value = cond()
    return value
  end, 20)
  if not done then
    error("timed out waiting for " .. what, 2)
  end
  return value
end

local function eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(("%s: expected %s, got %s"):format(what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

local function truthy(value, what)
  if not value then
    error(what, 2)
  end
  return value
end

local function path(rel)
  return vim.fs.joinpath(workspace, rel)
end

local function lines(buf)
  return vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false)
end

--- The 0-based line and column of the first `text` in `buf`'s line containing `anchor`.
local function find(buf, anchor, text)
  for i, line in ipairs(lines(buf)) do
    if line:find(anchor, 1, true) then
      local col = line:find(text or anchor, 1, true)
      if col then
        return i - 1, col - 1
      end
    end
  end
  error(("`%s` not found in %s"):format(anchor, vim.api.nvim_buf_get_name(buf)), 2)
end

local function cursor_at(buf, anchor, text)
  local line, col = find(buf, anchor, text)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_win_set_cursor(0, { line + 1, col })
end

local function client_of(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = "symbiont" })[1]
end

local function diagnostics_with(buf, code)
  return vim.tbl_filter(function(d)
    return d.code == code
  end, vim.diagnostic.get(buf))
end

--- With SYMBIONT_NVIM_SCREENSHOTS set, the current window as HTML (:TOhtml) in that directory,
--- which tests/it/nvim.rs turns into docs/images/NAME.png.
local function screenshot(name)
  local dir = vim.env.SYMBIONT_NVIM_SCREENSHOTS
  if dir and dir ~= "" then
    vim.fn.writefile(require("tohtml").tohtml(0, { title = name }), vim.fs.joinpath(dir, name .. ".html"))
  end
end

-- What vim.notify was asked to show, and how loud.
local notified = {}
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(notified, { message = message, level = level })
  if (level or 0) >= vim.log.levels.ERROR then
    -- Shown as an error, it would be raised as one inside the command being tested.
    say("notified error: " .. message)
    return
  end
  return notify(message, level, opts)
end

local function run()
  vim.opt.runtimepath:prepend(plugin)
  vim.opt.swapfile = false
  vim.cmd("filetype plugin indent on")
  vim.cmd("runtime! plugin/symbiont.lua")
  -- Edits the server makes to files that are not open (rename) are applied in new buffers.
  vim.o.hidden = true
  -- Diagnostics as text at the end of their line (Neovim 0.11 shows only signs by default).
  vim.diagnostic.config({ virtual_text = true })
  -- Neovim's default colours as a true-colour terminal shows them (for the screenshots).
  vim.o.termguicolors = true

  local reviewer, policies

  check("the commands exist before any Symbiont file is opened, and nothing has started", function()
    for _, name in ipairs({ "SymbiontRunAgent", "SymbiontVerifyAudit", "SymbiontCheck", "SymbiontInstallParser" }) do
      eq(2, vim.fn.exists(":" .. name), ":" .. name)
    end
    eq(nil, package.loaded["symbiont.lsp"], "the plugin loaded its LSP module at startup")
    eq(0, #vim.lsp.get_clients(), "clients at startup")
  end)

  check("the parser is compiled on first use, and highlighting starts", function()
    vim.cmd.edit(path("agents/incidents.symbi"))
    local incidents = vim.api.nvim_get_current_buf()
    eq("symbiont", vim.bo[incidents].filetype, "filetype of a .symbi file")
    wait_for("the parser to compile and highlighting to start", function()
      return vim.treesitter.highlighter.active[incidents]
    end, 60000)
    local parser = require("symbiont.parser")
    eq("installed", parser.status(require("symbiont").config()), "status")
    truthy(
      #vim.api.nvim_get_runtime_file("queries/symbiont/highlights.scm", true) > 0,
      "no highlights.scm on the runtimepath"
    )
  end)

  check("a .sym file gets filetype symbiont", function()
    vim.cmd.edit(path("agents/reviewer.sym"))
    reviewer = vim.api.nvim_get_current_buf()
    eq("symbiont", vim.bo[reviewer].filetype, "filetype of reviewer.sym")
  end)

  check("tree-sitter highlighting is active when a file opens, before the server has it", function()
    -- Still in the same tick as :edit: the server has not even been told of the file.
    eq({}, vim.lsp.get_clients({ bufnr = reviewer }), "clients attached to reviewer.sym")
    truthy(vim.treesitter.highlighter.active[reviewer], "no tree-sitter highlighter on the buffer")
    -- Headless, nothing is drawn: parse as the first redraw would.
    vim.treesitter.get_parser(reviewer, "symbiont"):parse(true)
    local line, col = find(reviewer, "agent reviewer", "agent")
    local captures = vim.tbl_map(function(c)
      return c.capture
    end, vim.treesitter.get_captures_at_pos(reviewer, line, col))
    truthy(vim.tbl_contains(captures, "keyword"), "`agent` is not a keyword: " .. vim.inspect(captures))
    local root = vim.treesitter.get_parser(reviewer, "symbiont"):parse()[1]:root()
    eq(false, root:has_error(), "the parse of reviewer.sym has an error")
    screenshot("nvim-treesitter")
  end)

  check("comments and indentation as symbiont fmt writes them", function()
    vim.api.nvim_set_current_buf(reviewer)
    eq("// %s", vim.bo.commentstring, "commentstring")
    eq(
      { true, 4, 4 },
      { vim.bo.expandtab, vim.bo.shiftwidth, vim.bo.softtabstop },
      "expandtab, shiftwidth, softtabstop"
    )
    local line = find(reviewer, "capabilities =")
    local before = lines(reviewer)[line + 1]
    vim.api.nvim_win_set_cursor(0, { line + 1, 0 })
    vim.cmd("normal gcc")
    eq("    // " .. vim.trim(before), lines(reviewer)[line + 1], "gcc")
    vim.cmd("normal gcc")
    eq(before, lines(reviewer)[line + 1], "gcc twice")
    -- Re-indenting the file with every indent removed gives it back as it was.
    local original = lines(reviewer)
    local scratch = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(scratch, 0, -1, false, vim.tbl_map(vim.trim, original))
    vim.api.nvim_set_current_buf(scratch)
    vim.bo[scratch].filetype = "symbiont"
    vim.cmd("normal! gg=G")
    eq(original, lines(scratch), "gg=G")
    vim.api.nvim_set_current_buf(reviewer)
    vim.api.nvim_buf_delete(scratch, { force = true })
  end)

  check("the server attaches, in the workspace, advertising file watching", function()
    local client = wait_for("symbiont-lsp to attach", function()
      local c = client_of(reviewer)
      return c and c.initialized and c
    end)
    eq(vim.fs.normalize(workspace), vim.fs.normalize(client.root_dir), "root_dir")
    eq(true, client.capabilities.workspace.didChangeWatchedFiles.dynamicRegistration, "dynamicRegistration")
    wait_for("the server's file watchers", function()
      return #(client.registrations["workspace/didChangeWatchedFiles"] or {}) > 0
    end)
  end)

  check("a file created on disk reaches the server (workspace/didChangeWatchedFiles)", function()
    local client = client_of(reviewer)
    -- In a subdirectory: Neovim's fallback watcher (without inotifywait) sees only the root's files.
    local file_path = path("agents/watched.sym")
    local found, asked, writes = false, false, 0
    wait_for("workspace/symbol to find the new file's agent", function()
      if not asked and not found then
        -- Written again each round: inotifywait may still be setting up its watches at first.
        writes = writes + 1
        local file = assert(io.open(file_path, "w"))
        file:write(('// write %d\nagent watched_agent {\n    capabilities = ["read"]\n}\n'):format(writes))
        file:close()
        asked = true
        vim.defer_fn(function()
          client:request("workspace/symbol", { query = "watched_agent" }, function(_, result)
            for _, symbol in ipairs(result or {}) do
              found = found or symbol.name == "watched_agent"
            end
            asked = false
          end, reviewer)
        end, 1000)
      end
      return found
    end, 15000)
    os.remove(file_path)
  end)

  check("an edit that introduces an error brings its diagnostic", function()
    local line, col = find(reviewer, "policies = [", "secure_development")
    vim.api.nvim_buf_set_text(reviewer, line, col, line, col + #"secure_development", { "secure_developmnt" })
    local found = wait_for("SYM0102", function()
      return diagnostics_with(reviewer, "SYM0102")[1]
    end)
    eq(line, found.lnum, "line of the diagnostic")
    eq(vim.diagnostic.severity.ERROR, found.severity, "severity")
    wait_for("the Run agent lens", function()
      return #vim.lsp.codelens.get(reviewer) > 0
    end)
    screenshot("nvim-diagnostics")
  end)

  check("its quick fix is applied", function()
    local line, col = find(reviewer, "policies = [", "secure_developmnt")
    vim.api.nvim_win_set_cursor(0, { line + 1, col })
    vim.lsp.buf.code_action({
      apply = true,
      filter = function(action)
        return action.isPreferred and action.title:find("secure_development", 1, true) ~= nil
      end,
    })
    wait_for("the fixed line", function()
      return lines(reviewer)[line + 1]:find("%[secure_development%]")
    end)
    wait_for("SYM0102 to go", function()
      return #diagnostics_with(reviewer, "SYM0102") == 0
    end)
  end)

  check("hover shows the policy", function()
    cursor_at(reviewer, "policies = [", "secure_development")
    local client = client_of(reviewer)
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    local response = assert(client:request_sync("textDocument/hover", params, 5000, reviewer))
    local text = vim.inspect(response.result and response.result.contents)
    truthy(text:find("secure_development", 1, true), "hover: " .. text)
    -- And through the user's K: a floating window with it.
    vim.lsp.buf.hover()
    local float = wait_for("the hover window", function()
      for _, win in ipairs(vim.api.nvim_list_wins()) do
        if vim.api.nvim_win_get_config(win).relative ~= "" then
          return win
        end
      end
    end)
    local shown = table.concat(lines(vim.api.nvim_win_get_buf(float)), "\n")
    truthy(shown:find("secure_development", 1, true), "hover window: " .. shown)
    vim.api.nvim_win_close(float, true)
  end)

  check("definition goes to the policy in another file", function()
    cursor_at(reviewer, "policies = [", "secure_development")
    vim.lsp.buf.definition()
    wait_for("policies.sym", function()
      return vim.api.nvim_buf_get_name(0):match("policies%.sym$")
    end)
    policies = vim.api.nvim_get_current_buf()
    local row = vim.api.nvim_win_get_cursor(0)[1]
    truthy(lines(policies)[row]:find("policy secure_development", 1, true), "landed on: " .. lines(policies)[row])
    vim.api.nvim_set_current_buf(reviewer)
  end)

  check("rename changes every file", function()
    cursor_at(reviewer, "policies = [", "secure_development")
    vim.lsp.buf.rename("secure_dev")
    wait_for("both files renamed", function()
      return lines(reviewer)[find(reviewer, "policies = [") + 1]:find("[secure_dev]", 1, true)
        and table.concat(lines(policies), "\n"):find("policy secure_dev extends", 1, true)
    end)
    wait_for("no unresolved reference", function()
      return #diagnostics_with(reviewer, "SYM0102") == 0
    end)
  end)

  check("formatting lays the file out", function()
    local line = find(reviewer, "capabilities =")
    local formatted = lines(reviewer)[line + 1]
    vim.api.nvim_buf_set_lines(reviewer, line, line + 1, false, { 'capabilities=["read","analyze",   "file_read"]' })
    vim.lsp.buf.format({ bufnr = reviewer, name = "symbiont", timeout_ms = 10000 })
    -- (The example is not laid out as fmt would: lines move.)
    local text = table.concat(lines(reviewer), "\n")
    eq(formatted, lines(reviewer)[find(reviewer, "capabilities") + 1], "the formatted line in\n" .. text)
    local fmt = vim.system({ "symbiont", "fmt", "-" }, { stdin = text .. "\n", text = true }):wait()
    eq(fmt.stdout, text .. "\n", "the buffer, as `symbiont fmt` formats it")
  end)

  check(":SymbiontCheck fills the quickfix list", function()
    local file = assert(io.open(path("agents/broken.sym"), "w"))
    file:write("agent broken {\n    policies = [no_such_policy]\n}\n")
    file:close()
    local items
    require("symbiont.commands").check(nil, function(found)
      items = found
    end)
    wait_for("symbiont check", function()
      return items
    end, 20000)
    local qf = vim.fn.getqflist()
    local hit = vim.tbl_filter(function(item)
      return vim.api.nvim_buf_get_name(item.bufnr):match("broken%.sym$") and item.text:find("SYM0102", 1, true)
    end, qf)
    eq(1, #hit, "SYM0102 of broken.sym in " .. vim.inspect(qf))
    eq({ 2, 17, "E" }, { hit[1].lnum, hit[1].col, hit[1].type }, "position and type")
    os.remove(path("agents/broken.sym"))
    vim.cmd("cclose")
  end)

  if vim.env.SYMBIONT_TEST_SKIP_RUN ~= "1" then
    check("the Run agent lens runs the example with the input given, and its output arrives", function()
      vim.api.nvim_set_current_buf(reviewer)
      wait_for("the lens", function()
        return #vim.lsp.codelens.get(reviewer) > 0
      end)
      local lens = vim.lsp.codelens.get(reviewer)[1]
      eq({ "symbiont.runAgent", "reviewer" }, { lens.command.command, lens.command.arguments[1] }, "lens command")
      local prompts = {}
      vim.ui.input = function(opts, on_confirm)
        table.insert(prompts, opts.prompt)
        on_confirm('{"target": "other.diff"}')
      end
      vim.api.nvim_win_set_cursor(0, { lens.range.start.line + 1, 0 })
      vim.lsp.codelens.run()
      eq({ "Input for agent reviewer (JSON, empty for none): " }, prompts, "input prompt")
      local out = vim.fn.bufnr("symbiont://run/reviewer")
      local text = wait_for("the run's result", function()
        local all = table.concat(lines(out), "\n")
        return all:find("Agent reviewer ", 1, true) and all
      end, 40000)
      -- The review of other.diff (the input's target), as the agent printed it.
      truthy(text:find('"file": "other.diff"', 1, true), "no review of other.diff in:\n" .. text)
      truthy(text:find('"verdict": "changes_requested"', 1, true), "no verdict in:\n" .. text)
      truthy(text:find("Agent reviewer completed (exit 0) at Tier2", 1, true), "not completed:\n" .. text)
      local verified
      require("symbiont.commands").verify_audit(nil, function(err, result)
        verified = { err = err, result = result }
      end)
      wait_for("the audit verification", function()
        return verified
      end)
      eq(true, verified.result and verified.result.valid, "audit log valid: " .. vim.inspect(verified))
    end)
  end

  check(":SymbiontRunAgent outside an agent offers the file's agents", function()
    vim.api.nvim_set_current_buf(reviewer)
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    local offered
    vim.ui.select = function(items, opts, on_choice)
      offered = vim.tbl_map(opts.format_item, items)
      on_choice(nil)
    end
    vim.cmd("SymbiontRunAgent")
    eq({ ("reviewer (line %d)"):format(find(reviewer, "agent reviewer(") + 1) }, offered, "agents offered")
  end)

  check(":SymbiontInstallParser compiles the parser again and installs its queries", function()
    local done, err = false, nil
    require("symbiont.commands").install_parser(nil, function(e)
      done, err = true, e
    end)
    wait_for("the parser to compile", function()
      return done
    end, 60000)
    eq(nil, err, "install error")
    local parser = require("symbiont.parser")
    truthy(vim.uv.fs_stat(parser.library()), "no " .. parser.library())
    eq("installed", parser.status(require("symbiont").config()), "status")
  end)

  check(":checkhealth symbiont reports the binaries and the parser", function()
    vim.cmd("checkhealth symbiont")
    local report = table.concat(lines(0), "\n")
    for _, expected in ipairs({
      "OK Neovim 0.11",
      "OK symbiont-lsp: symbiont-lsp ",
      "OK symbiont: symbiont ",
      "OK inotifywait",
      "OK tree-sitter parser installed",
      "OK highlight queries",
      "OK running",
    }) do
      truthy(report:find(expected, 1, true), ("no `%s` in:\n%s"):format(expected, report))
    end
    truthy(not report:find("ERROR", 1, true), "an error in:\n" .. report)
    vim.cmd("bwipeout")
  end)

  check("keymaps are off by default, and setup{ keymaps } maps them in Symbiont buffers", function()
    eq({}, vim.fn.maparg("<localleader>r", "n", false, true), "a mapping without keymaps")
    require("symbiont").setup({ keymaps = { check = false } })
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir, "p")
    vim.cmd.edit(vim.fs.joinpath(dir, "mapped.sym"))
    eq(1, vim.fn.maparg("<localleader>r", "n", false, true).buffer, "<localleader>r is buffer-local")
    eq("Symbiont: verify audit", vim.fn.maparg("<localleader>v", "n", false, true).desc, "<localleader>v")
    eq({}, vim.fn.maparg("<localleader>c", "n", false, true), "check = false leaves <localleader>c unmapped")
  end)

  check("fix_on_save applies the safe fixes as the file is written", function()
    require("symbiont").setup({ fix_on_save = true })
    -- Every file back as it is on disk (the rename above changed two, unsaved).
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(b) and vim.bo[b].modified then
        vim.api.nvim_buf_call(b, function()
          vim.cmd("edit!")
        end)
      end
    end
    vim.cmd.edit(path("agents/reviewer.sym"))
    local buf = vim.api.nvim_get_current_buf()
    local line, col = find(buf, "policies = [", "secure_development")
    vim.api.nvim_buf_set_text(buf, line, col, line, col + #"secure_development", { "secure_developmnt" })
    wait_for("SYM0102", function()
      return diagnostics_with(buf, "SYM0102")[1]
    end)
    vim.cmd("write")
    local on_disk = table.concat(vim.fn.readfile(path("agents/reviewer.sym")), "\n")
    truthy(on_disk:find("policies = [secure_development]", 1, true), "not fixed on disk:\n" .. on_disk)
  end)

  check("a missing server is an error, once, that says how to install it", function()
    require("symbiont").setup({ server = { path = "symbiont-lsp-not-installed" } })
    notified = {}
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir, "p")
    vim.cmd.edit(vim.fs.joinpath(dir, "a.sym"))
    vim.cmd.edit(vim.fs.joinpath(dir, "b.sym"))
    vim.wait(200)
    local errors = vim.tbl_filter(function(n)
      return n.level == vim.log.levels.ERROR
    end, notified)
    eq(1, #errors, "error notifications: " .. vim.inspect(notified))
    truthy(errors[1].message:find("symbiont-lsp-not-installed", 1, true), errors[1].message)
    truthy(errors[1].message:find("cargo install --locked --path lsp", 1, true), errors[1].message)
  end)
end

local ok, err = xpcall(run, debug.traceback)
if not ok then
  failures = failures + 1
  say("FAIL the harness itself: " .. err)
end
say(
  ("%s: %d failed, in %d ms"):format(
    failures == 0 and "PASSED" or "FAILED",
    failures,
    math.floor((vim.uv.hrtime() - started) / 1e6)
  )
)
if failures > 0 then
  vim.cmd("cquit 1")
else
  vim.cmd("qa!")
end
