-- Pure helpers (no editor state): position conversion and splitting a suggestion for
-- partial accepts. Kept apart so that they can be unit-tested in a bare `nvim -l`.
local M = {}

--- Byte index in `line` of the LSP `character` offset in `encoding`.
---@param line string
---@param character integer
---@param encoding string 'utf-8'|'utf-16'|'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' or character <= 0 then
    return math.min(math.max(character, 0), #line)
  end
  local ok, col
  if vim.fn.has('nvim-0.11') == 1 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  if not ok or not col then
    return #line
  end
  return math.min(col, #line)
end

--- The LSP `character` offset in `encoding` of byte `col` in `line`.
function M.lsp_col(line, col, encoding)
  col = math.min(math.max(col, 0), #line)
  if encoding == 'utf-8' then
    return col
  end
  if vim.fn.has('nvim-0.11') == 1 then
    return vim.str_utfindex(line, encoding, col, false)
  end
  local utf32, utf16 = vim.str_utfindex(line, col)
  return encoding == 'utf-16' and utf16 or utf32
end

--- The next word of `text` (with the whitespace before it, and a leading line break),
--- as VS Code's "accept next word" takes it.
---@param text string
---@return string
function M.next_word(text)
  for _, pattern in ipairs({ '^\n?[ \t]*[%w_]+', '^\n?[ \t]*[^%w_%s]+', '^%s+' }) do
    local piece = text:match(pattern)
    if piece and piece ~= '' then
      return piece
    end
  end
  return text
end

--- The rest of the current line of `text`; when `text` starts with a line break, that
--- break and the line after it.
---@param text string
---@return string
function M.next_line(text)
  local start = text:sub(1, 1) == '\n' and 2 or 1
  local stop = text:find('\n', start, true)
  if not stop then
    return text
  end
  return text:sub(1, stop - 1)
end

--- What to draw for `text` inserted at the cursor when it replaces `tail` (the text after
--- the cursor that it overwrites): the tail stays on screen, so a first line ending with
--- the tail is drawn without it.
---@return string[] lines
function M.display_lines(text, tail)
  local lines = vim.split(text, '\n', { plain = true })
  if tail ~= '' then
    if #lines == 1 and lines[1]:sub(-#tail) == tail then
      lines[1] = lines[1]:sub(1, #lines[1] - #tail)
    elseif #lines > 1 and lines[#lines]:sub(-#tail) == tail then
      lines[#lines] = lines[#lines]:sub(1, #lines[#lines] - #tail)
    end
  end
  return lines
end

return M
