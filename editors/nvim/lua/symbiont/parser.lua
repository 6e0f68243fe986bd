-- The tree-sitter parser for Symbiont files: compiled from the grammar's generated C sources
-- (editors/tree-sitter-symbiont/src) with the system C compiler into
-- stdpath("data")/site/parser/symbiont.so, its queries copied beside it into
-- stdpath("data")/site/queries/symbiont/. Both carry the revision (a hash of the sources) they
-- were made from, so a changed grammar is rebuilt rather than paired with stale queries.
local M = {}

local uv = vim.uv

local function plugin_root()
  local this = debug.getinfo(1, "S").source:sub(2)
  return vim.fs.dirname(vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(this, ":p")))))
end

--- Where the grammar is: the `parser.source` option, else beside this plugin in the repository.
function M.source_dir(opts)
  return vim.fs.normalize(opts.parser.source or vim.fs.joinpath(plugin_root(), "..", "tree-sitter-symbiont"))
end

function M.site()
  return vim.fs.joinpath(vim.fn.stdpath("data"), "site")
end

function M.library()
  return vim.fs.joinpath(M.site(), "parser", "symbiont.so")
end

local function revision_file()
  return vim.fs.joinpath(M.site(), "parser-info", "symbiont.revision")
end

local function read(path)
  local file = io.open(path, "rb")
  if not file then
    return nil
  end
  local text = file:read("*a")
  file:close()
  return text
end

local function write(path, text)
  vim.fn.mkdir(vim.fs.dirname(path), "p")
  local tmp = path .. ".tmp"
  local file = assert(io.open(tmp, "wb"))
  file:write(text)
  file:close()
  assert(uv.fs_rename(tmp, path))
end

--- The C sources of the grammar (parser.c and, if it has one, scanner.c), or nil and why not.
local function sources(opts)
  local src = vim.fs.joinpath(M.source_dir(opts), "src")
  local parser_c = vim.fs.joinpath(src, "parser.c")
  if not uv.fs_stat(parser_c) then
    return nil,
      ("the grammar's %s is missing (set `parser.source` to a checkout's editors/tree-sitter-symbiont)"):format(
        parser_c
      )
  end
  local files = { parser_c }
  local scanner = vim.fs.joinpath(src, "scanner.c")
  if uv.fs_stat(scanner) then
    table.insert(files, scanner)
  end
  return files, src
end

--- A hash of the sources and queries: what an installed parser must have been built from.
local function revision(files, opts)
  local hashes = {}
  for _, file in ipairs(vim.list_extend(vim.list_extend({}, files), M.query_files(opts))) do
    table.insert(hashes, vim.fs.basename(file) .. " " .. vim.fn.sha256(read(file) or ""))
  end
  return table.concat(hashes, "\n")
end

function M.query_files(opts)
  local dir = vim.fs.joinpath(M.source_dir(opts), "queries")
  local found = {}
  for name, kind in vim.fs.dir(dir) do
    if kind == "file" and name:match("%.scm$") then
      table.insert(found, vim.fs.joinpath(dir, name))
    end
  end
  table.sort(found)
  return found
end

--- "installed", "outdated" (the grammar changed since), or "missing".
function M.status(opts)
  if not uv.fs_stat(M.library()) then
    return "missing"
  end
  local files = sources(opts)
  if files and read(revision_file()) ~= revision(files, opts) then
    return "outdated"
  end
  return "installed"
end

function M.compiler()
  return vim.env.CC and vim.env.CC ~= "" and vim.env.CC or "cc"
end

--- Compiles and installs the parser and its queries, then calls `on_done(nil)` or
--- `on_done(error)` on the main loop. Nothing is replaced until the build has succeeded.
function M.install(opts, on_done)
  local files, src = sources(opts)
  if not files then
    return on_done(src)
  end
  local compiler = opts.parser.compiler or M.compiler()
  if vim.fn.executable(compiler) == 0 then
    return on_done(
      ("no C compiler: `%s` is not executable (install a C compiler, or set `parser.compiler`)"):format(compiler)
    )
  end
  local library = M.library()
  vim.fn.mkdir(vim.fs.dirname(library), "p")
  local tmp = ("%s.%d.tmp"):format(library, uv.os_getpid())
  local cmd = { compiler, "-shared", "-fPIC", "-O2", "-std=c11", "-I", src, "-o", tmp }
  vim.list_extend(cmd, files)
  vim.system(cmd, { text = true }, function(result)
    vim.schedule(function()
      if result.code ~= 0 then
        os.remove(tmp)
        return on_done(("compiling the parser failed (%s):\n%s"):format(table.concat(cmd, " "), result.stderr))
      end
      local queries = vim.fs.joinpath(M.site(), "queries", "symbiont")
      vim.fn.mkdir(queries, "p")
      for _, query in ipairs(M.query_files(opts)) do
        write(vim.fs.joinpath(queries, vim.fs.basename(query)), assert(read(query)))
      end
      -- A library Neovim has loaded must not be overwritten in place: rename over it.
      assert(uv.fs_rename(tmp, library))
      write(revision_file(), revision(files, opts))
      -- Neovim searches only the runtimepath directories that existed when it last looked:
      -- when `site` has just been created, setting the option makes it look again.
      if #vim.api.nvim_get_runtime_file("queries/symbiont/highlights.scm", false) == 0 then
        vim.o.runtimepath = vim.o.runtimepath
      end
      on_done(nil)
    end)
  end)
end

local loaded = false

--- Registers the installed parser with Neovim (once); false if it is not installed.
function M.load()
  if loaded then
    return true
  end
  if not uv.fs_stat(M.library()) then
    return false
  end
  local ok = vim.treesitter.language.add("symbiont", { path = M.library() })
  vim.treesitter.language.register("symbiont", { "symbiont" })
  loaded = ok == true
  return loaded
end

--- Starts tree-sitter highlighting in `buf` if the parser is there; true if it did.
function M.start(buf)
  if not vim.api.nvim_buf_is_valid(buf) or not M.load() then
    return false
  end
  vim.treesitter.start(buf, "symbiont")
  return true
end

return M
