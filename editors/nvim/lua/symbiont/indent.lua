-- The indent of a line of a Symbiont file ('indentexpr'): the layout `symbiont fmt` writes, one
-- level per open bracket of the line above, one less on a line that starts by closing one.
local M = {}

local opens = { ["{"] = true, ["["] = true, ["("] = true }
local closes = { ["}"] = true, ["]"] = true, [")"] = true }

--- Brackets `line` leaves open (negative: closes more than it opens), not counting those it
--- starts with (they moved the line itself back) nor any in strings and comments.
local function open_brackets(line)
  local depth, i, leading = 0, 1, true
  while i <= #line do
    local c = line:sub(i, i)
    if c == '"' then
      leading = false
      i = i + 1
      while i <= #line and line:sub(i, i) ~= '"' do
        i = i + (line:sub(i, i) == "\\" and 2 or 1)
      end
    elseif line:sub(i, i + 1) == "//" then
      break
    elseif line:sub(i, i + 1) == "/*" then
      local close = line:find("*/", i + 2, true)
      if not close then
        break
      end
      i = close + 1
    elseif opens[c] then
      depth, leading = depth + 1, false
    elseif closes[c] then
      if not leading then
        depth = depth - 1
      end
    elseif not c:match("%s") then
      leading = false
    end
    i = i + 1
  end
  return depth
end

function M.expr(lnum)
  lnum = lnum or vim.v.lnum
  local prev = vim.fn.prevnonblank(lnum - 1)
  if prev == 0 then
    return 0
  end
  local sw = vim.fn.shiftwidth()
  local above = vim.fn.getline(prev)
  local line = vim.fn.getline(lnum)
  local indent = vim.fn.indent(prev)
  local trimmed = vim.trim(above)
  -- Inside a block comment: align the ` *` of its lines under the `/*`'s star.
  if trimmed:sub(1, 2) == "/*" and not trimmed:find("*/", 3, true) then
    return indent + 1
  elseif trimmed:sub(1, 1) == "*" and trimmed:sub(1, 2) ~= "*/" then
    return trimmed:sub(-2) == "*/" and math.max(indent - 1, 0) or indent
  end
  local depth = open_brackets(above)
  if depth > 0 then
    indent = indent + sw
  elseif depth < 0 then
    indent = indent - sw
  end
  if closes[vim.trim(line):sub(1, 1)] then
    indent = indent - sw
  end
  return math.max(indent, 0)
end

return M
