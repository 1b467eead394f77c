-- Ghostline for Neovim: starts ghostline-lsp for the configured filetypes and shows its
-- inline completions as ghost text. Neovim 0.12+ uses the built-in
-- vim.lsp.inline_completion; 0.10 and 0.11 get the extmark implementation in ghost.lua.
local M = {}

M.defaults = {
  -- The server command; nil finds `ghostline-lsp` on PATH.
  cmd = nil,
  -- Filetypes to start the server for; { '*' } means every buffer with a filetype.
  filetypes = {
    'c', 'cpp', 'cs', 'css', 'go', 'html', 'java', 'javascript', 'javascriptreact', 'json',
    'kotlin', 'lua', 'markdown', 'php', 'python', 'ruby', 'rust', 'scala', 'sh', 'sql',
    'swift', 'toml', 'typescript', 'typescriptreact', 'yaml', 'zig',
  },
  -- Sent as initializationOptions (and on :Ghostline reload as didChangeConfiguration); the
  -- names are ghostline-lsp's: backendUrl, apiKeyEnv, caFile, model, fimTemplate, maxTokens,
  -- maxLines, multiline ("auto"|"always"|"never"), debounceMs, enabledLanguages, timeoutMs, latencyTargetMs,
  -- contextTokens, temperature, contextMode ("full"|"currentFile"|"jaccard"), promptFamily,
  -- retrievedShare, similarWindows, grammarsDir, excludeGlobs, maxIndexedFiles, stats (local
  -- acceptance stats, default true), shareStats (send the counters to the backend, default false).
  settings = {},
  -- Wait this long after the last keystroke before asking (extmark path; 0.12's built-in
  -- path has its own 200 ms debounce).
  debounce_ms = 75,
  -- nil: the built-in vim.lsp.inline_completion where it exists (0.12+); false: always the
  -- extmark implementation.
  native = nil,
  enabled = true,
  -- Insert-mode keys; set one to false to leave that key alone.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    next = '<M-]>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
  },
}

M.config = vim.deepcopy(M.defaults)
local backend_state = 'ready' -- 'ready' | 'unreachable'
local working = {} -- request id -> true while an inlineCompletion request is pending

local function ghost()
  return require('ghostline.ghost')
end

function M.uses_native()
  if M.config.native == false then
    return false
  end
  return vim.lsp.inline_completion ~= nil
end

function M.server_cmd()
  if M.config.cmd then
    return type(M.config.cmd) == 'string' and { M.config.cmd } or M.config.cmd
  end
  local path = vim.fn.exepath('ghostline-lsp')
  if path == '' then
    return nil
  end
  return { path }
end

local function clients(bufnr)
  return vim.lsp.get_clients({ name = 'ghostline', bufnr = bufnr })
end

--- 'disabled' | 'no server' | 'working' | 'unreachable' | 'ready', for a statusline.
function M.status()
  if not M.config.enabled then
    return 'disabled'
  end
  if #clients() == 0 then
    return 'no server'
  end
  if next(working) then
    return 'working'
  end
  return backend_state
end

local function feed(key)
  -- 'i': ahead of what is already typed, so the key lands where it was pressed.
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(key, true, false, true), 'ni', false)
end

--- `kind`: 'word' | 'line', sent with ghostline.accept for the acceptance stats (all of the
--- suggestion taken this way is a whole accept).
local function native_partial(split, kind)
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local text = type(item.insert_text) == 'string' and item.insert_text or item.insert_text.value
      local piece = split(text)
      local pos = vim.api.nvim_win_get_cursor(0)
      local row, col = pos[1] - 1, pos[2]
      local lines = vim.split(piece, '\n', { plain = true })
      vim.api.nvim_buf_set_text(0, row, col, row, col, lines)
      vim.api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
      local client = vim.lsp.get_client_by_id(item.client_id)
      if client then
        local argument = { uri = vim.uri_from_bufnr(0), kind = piece ~= text and kind or nil }
        client:exec_cmd({ title = 'accept', command = 'ghostline.accept', arguments = { argument } }, { bufnr = 0 })
      end
    end,
  })
end

--- Actions behind the keymaps; each returns true when it did something.
M.actions = {}

function M.actions.accept()
  if M.uses_native() then
    return vim.lsp.inline_completion.get()
  end
  return ghost().accept()
end

function M.actions.accept_word()
  if M.uses_native() then
    return native_partial(require('ghostline.util').next_word, 'word')
  end
  return ghost().accept_word()
end

function M.actions.accept_line()
  if M.uses_native() then
    return native_partial(require('ghostline.util').next_line, 'line')
  end
  return ghost().accept_line()
end

function M.actions.next()
  if M.uses_native() then
    vim.lsp.inline_completion.select({ count = 1 })
    return true
  end
  ghost().next()
  return true
end

local function send_dismiss(bufnr)
  for _, client in ipairs(clients(bufnr)) do
    local params = { command = 'ghostline.dismiss', arguments = { { uri = vim.uri_from_bufnr(bufnr) } } }
    if vim.fn.has('nvim-0.11') == 1 then
      client:request('workspace/executeCommand', params, function() end, bufnr)
    else
      client.request('workspace/executeCommand', params, function() end, bufnr)
    end
  end
end

function M.actions.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  if M.uses_native() then
    if not vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) then
      return false
    end
    -- No public "hide": switching it off and on for this buffer clears what is shown.
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    send_dismiss(bufnr)
    return true
  end
  return ghost().dismiss(bufnr)
end

function M.actions.trigger()
  if M.uses_native() then
    -- The built-in path asks by itself in insert mode; re-enabling asks again now.
    local bufnr = vim.api.nvim_get_current_buf()
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return true
  end
  ghost().request(nil, 1)
  return true
end

local function set_keymaps(bufnr)
  for action, lhs in pairs(M.config.keymaps) do
    if lhs and M.actions[action] then
      vim.keymap.set('i', lhs, function()
        if not M.config.enabled or not M.actions[action]() then
          -- Nothing shown: the key does what it did before (Tab indents, ...).
          if action == 'accept' or action == 'accept_word' or action == 'accept_line' then
            feed(lhs)
          end
        end
      end, { buffer = bufnr, desc = 'ghostline: ' .. action, silent = true })
    end
  end
end

local function on_attach(client, bufnr)
  set_keymaps(bufnr)
  if M.uses_native() then
    if M.config.enabled then
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    end
  else
    ghost().attach(bufnr, M.config)
  end
end

local function filetype_enabled(ft)
  if ft == nil or ft == '' then
    return false
  end
  for _, f in ipairs(M.config.filetypes) do
    if f == '*' or f == ft then
      return true
    end
  end
  return false
end

function M.start(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not filetype_enabled(vim.bo[bufnr].filetype) or vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local cmd = M.server_cmd()
  if not cmd then
    vim.notify_once('ghostline: ghostline-lsp not found (set cmd in setup{} or put it on PATH)', vim.log.levels.WARN)
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  local root = (vim.fs.root and name ~= '' and vim.fs.root(bufnr, { '.git' })) or vim.fn.getcwd()
  return vim.lsp.start({
    name = 'ghostline',
    cmd = cmd,
    root_dir = root,
    init_options = M.config.settings,
    on_attach = on_attach,
    handlers = {
      ['window/showMessage'] = function(err, result, ctx, cfg)
        if result and type(result.message) == 'string' and result.message:match('^ghostline:') and result.type == 2 then
          backend_state = 'unreachable'
        end
        return vim.lsp.handlers['window/showMessage'](err, result, ctx, cfg)
      end,
      ['window/logMessage'] = function(err, result, ctx, cfg)
        if result and type(result.message) == 'string' and result.message:match('answers again') then
          backend_state = 'ready'
        end
        return vim.lsp.handlers['window/logMessage'](err, result, ctx, cfg)
      end,
    },
  }, { bufnr = bufnr })
end

function M.enable(on)
  M.config.enabled = on
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if #clients(bufnr) > 0 then
      if M.uses_native() then
        vim.lsp.inline_completion.enable(on, { bufnr = bufnr })
      elseif not on then
        ghost().clear(bufnr)
      end
    end
  end
end

local subcommands = {
  enable = function() M.enable(true) end,
  disable = function() M.enable(false) end,
  toggle = function() M.enable(not M.config.enabled) end,
  status = function() print('ghostline: ' .. M.status()) end,
  trigger = function() M.actions.trigger() end,
  log = function() vim.cmd.tabnew(vim.lsp.get_log_path()) end,
}

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if opts and opts.filetypes then
    M.config.filetypes = opts.filetypes
  end
  vim.api.nvim_set_hl(0, 'GhostlineSuggestion', { link = 'Comment', default = true })
  local group = vim.api.nvim_create_augroup('ghostline', { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd('LspRequest', {
    group = group,
    callback = function(args)
      local request = args.data and args.data.request
      if not request or request.method ~= 'textDocument/inlineCompletion' then
        return
      end
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= 'ghostline' then
        return
      end
      if request.type == 'pending' then
        working[args.data.request_id] = true
      else
        working[args.data.request_id] = nil
      end
    end,
  })
  vim.api.nvim_create_user_command('Ghostline', function(args)
    local fn = subcommands[args.args ~= '' and args.args or 'status']
    if not fn then
      vim.notify('ghostline: unknown subcommand ' .. args.args, vim.log.levels.ERROR)
      return
    end
    fn()
  end, {
    nargs = '?',
    complete = function()
      return vim.tbl_keys(subcommands)
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      M.start(bufnr)
    end
  end
end

return M
