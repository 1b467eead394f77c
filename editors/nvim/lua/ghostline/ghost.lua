-- Ghost text with extmarks, for Neovim 0.10 and 0.11 (0.12 has vim.lsp.inline_completion).
-- Asks `textDocument/inlineCompletion` while typing (debounced), draws the first item at the
-- cursor, clears it when the cursor moves away or insert mode ends.
local util = require('ghostline.util')

local M = {}
local ns = vim.api.nvim_create_namespace('ghostline')
M.ns = ns

-- Per buffer: { row, col, text, tail, items, index, client_id, uri }
local state = {}
local timers = {}
local pending = {} -- bufnr -> { client, id }
local own_tick = {} -- bufnr -> changedtick right after our own edit
local listeners = {}

local function has011()
  return vim.fn.has('nvim-0.11') == 1
end

local function client_request(client, method, params, handler, bufnr)
  if has011() then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function client_cancel(client, id)
  if has011() then
    client:cancel_request(id)
  else
    client.cancel_request(id)
  end
end

function M.on_change(fn)
  table.insert(listeners, fn)
end

local function emit(event)
  for _, fn in ipairs(listeners) do
    pcall(fn, event)
  end
end

local function get_client(bufnr)
  return vim.lsp.get_clients({ name = 'ghostline', bufnr = bufnr })[1]
end

function M.clear(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
  state[bufnr] = nil
end

local function cancel_pending(bufnr)
  local p = pending[bufnr]
  if p then
    pcall(client_cancel, p.client, p.id)
    pending[bufnr] = nil
    emit('idle')
  end
end

function M.current(bufnr)
  return state[bufnr or vim.api.nvim_get_current_buf()]
end

local function draw(bufnr)
  vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local s = state[bufnr]
  if not s or s.text == '' then
    return
  end
  local lines = util.display_lines(s.text, s.tail)
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], 'GhostlineSuggestion' } })
  end
  local opts = { hl_mode = 'combine', priority = 1000 }
  if lines[1] ~= '' then
    opts.virt_text = { { lines[1], 'GhostlineSuggestion' } }
    opts.virt_text_pos = 'inline'
  end
  if #virt_lines > 0 then
    opts.virt_lines = virt_lines
  end
  pcall(vim.api.nvim_buf_set_extmark, bufnr, ns, s.row, s.col, opts)
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

--- Shows item `index` of `items` (LSP InlineCompletionItems) answered at (row, col).
local function show(bufnr, client, items, index, row, col)
  local item = items[index]
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local tail = ''
  if item.range then
    local s_line = item.range.start.line
    local e_line = item.range['end'].line
    if s_line ~= row then
      return
    end
    local s_col = util.byte_col(line, item.range.start.character, client.offset_encoding)
    if s_col < col then
      -- The range starts before the cursor: the item repeats what is typed already.
      local typed = line:sub(s_col + 1, col)
      if text:sub(1, #typed) ~= typed then
        return
      end
      text = text:sub(#typed + 1)
    end
    if e_line == row then
      local e_col = util.byte_col(line, item.range['end'].character, client.offset_encoding)
      tail = line:sub(col + 1, math.max(col, e_col))
    end
  end
  state[bufnr] = {
    row = row,
    col = col,
    text = text or '',
    tail = tail,
    items = items,
    index = index,
    client_id = client.id,
    command = item.command,
  }
  draw(bufnr)
  emit(text ~= '' and 'shown' or 'idle')
end

--- Asks the server now. `kind`: 1 invoked (by hand), 2 automatic.
function M.request(bufnr, kind)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if not client then
    return
  end
  cancel_pending(bufnr)
  local row, col = cursor()
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = row, character = util.lsp_col(line, col, client.offset_encoding) },
    context = { triggerKind = kind or 2 },
  }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  emit('working')
  local ok, id = client_request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if pending[bufnr] and pending[bufnr].id == id then
      pending[bufnr] = nil
    end
    emit('idle')
    if err or not result then
      return
    end
    -- Stale: the buffer or the cursor moved on since the request.
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr then
      return
    end
    if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick or not vim.api.nvim_get_mode().mode:match('^i') then
      return
    end
    local r, c = cursor()
    if r ~= row or c ~= col then
      return
    end
    local items = result.items or result
    if type(items) ~= 'table' or #items == 0 then
      M.clear(bufnr)
      return
    end
    show(bufnr, client, items, 1, row, col)
  end, bufnr)
  if ok and id then
    pending[bufnr] = { client = client, id = id }
  end
end

function M.schedule(bufnr, delay_ms)
  local timer = timers[bufnr]
  if not timer then
    timer = vim.uv.new_timer()
    timers[bufnr] = timer
  end
  timer:stop()
  timer:start(delay_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_buf_is_valid(bufnr) and vim.api.nvim_get_current_buf() == bufnr
      and vim.api.nvim_get_mode().mode:match('^i') then
      M.request(bufnr, 2)
    end
  end))
end

local function exec_command(bufnr, command)
  local s = state[bufnr]
  local client = s and vim.lsp.get_client_by_id(s.client_id) or get_client(bufnr)
  if client and command then
    client_request(client, 'workspace/executeCommand', {
      command = command.command,
      arguments = command.arguments,
    }, function() end, bufnr)
  end
end

--- Inserts `piece` (the start of the suggestion, or all of it) at the cursor.
--- Returns false when nothing is shown.
--- `kind` ('word' | 'line'): what a partial accept took, told to the server (acceptance stats).
local function insert(bufnr, piece, whole, kind)
  local s = state[bufnr]
  if not s or s.text == '' then
    return false
  end
  local row, col = cursor()
  if row ~= s.row or col ~= s.col then
    M.clear(bufnr)
    return false
  end
  local lines = vim.split(piece, '\n', { plain = true })
  local end_col = whole and (col + #s.tail) or col
  vim.api.nvim_buf_set_text(bufnr, row, col, row, end_col, lines)
  own_tick[bufnr] = vim.api.nvim_buf_get_changedtick(bufnr)
  local new_row = row + #lines - 1
  local new_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  if whole or piece == s.text then
    local command = s.command
    M.clear(bufnr)
    exec_command(bufnr, command or { command = 'ghostline.accept', arguments = { { uri = vim.uri_from_bufnr(bufnr) } } })
  else
    s.text = s.text:sub(#piece + 1)
    s.row, s.col = new_row, new_col
    draw(bufnr)
    exec_command(bufnr, { command = 'ghostline.accept', arguments = { { uri = vim.uri_from_bufnr(bufnr), kind = kind } } })
  end
  return true
end

function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  return s ~= nil and insert(bufnr, s.text, true)
end

function M.accept_word(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  return s ~= nil and insert(bufnr, util.next_word(s.text), false, 'word')
end

function M.accept_line(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  return s ~= nil and insert(bufnr, util.next_line(s.text), false, 'line')
end

function M.next(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  if s and #s.items > 1 then
    local client = vim.lsp.get_client_by_id(s.client_id)
    show(bufnr, client, s.items, s.index % #s.items + 1, s.row, s.col)
  else
    M.request(bufnr, 1)
  end
end

function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = state[bufnr]
  cancel_pending(bufnr)
  M.clear(bufnr)
  if s then
    exec_command(bufnr, { command = 'ghostline.dismiss', arguments = { { uri = vim.uri_from_bufnr(bufnr) } } })
  end
  return s ~= nil
end

--- Typing what the suggestion shows keeps the rest on screen at once.
local function type_through(bufnr)
  local s = state[bufnr]
  if not s then
    return false
  end
  local row, col = cursor()
  if row ~= s.row or col <= s.col then
    return false
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local typed = line:sub(s.col + 1, col)
  if typed:find('\n', 1, true) or s.text:sub(1, #typed) ~= typed or #typed >= #s.text then
    return false
  end
  s.text = s.text:sub(#typed + 1)
  s.col = col
  draw(bufnr)
  return true
end

function M.attach(bufnr, config)
  local group = vim.api.nvim_create_augroup('ghostline_buf_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      if own_tick[bufnr] == vim.api.nvim_buf_get_changedtick(bufnr) or not config.enabled then
        return
      end
      if not type_through(bufnr) then
        M.clear(bufnr)
      end
      cancel_pending(bufnr)
      M.schedule(bufnr, config.debounce_ms)
    end,
  })
  -- Entering insert mode, and resting in it ('updatetime'), ask too: the first ask starts the
  -- server's warm-ups for the spot, and an ask after a rest gets the answer of the larger
  -- prompt they made affordable (the suggestion on screen stays when there is none).
  vim.api.nvim_create_autocmd({ 'InsertEnter', 'CursorHoldI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if config.enabled then
        M.schedule(bufnr, config.debounce_ms)
      end
    end,
  })
  vim.api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = state[bufnr]
      if s then
        local row, col = cursor()
        if row ~= s.row or col ~= s.col then
          M.clear(bufnr)
        end
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local t = timers[bufnr]
      if t then
        t:stop()
      end
      cancel_pending(bufnr)
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('BufWipeout', {
    group = group,
    buffer = bufnr,
    callback = function()
      local t = timers[bufnr]
      if t then
        t:stop()
        t:close()
        timers[bufnr] = nil
      end
      state[bufnr] = nil
    end,
  })
end

return M
