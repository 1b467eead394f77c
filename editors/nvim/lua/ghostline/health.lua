-- :checkhealth ghostline
local M = {}

local function http_status(url, timeout_ms)
  local host, port, path = url:match('^https?://([^/:]+):?(%d*)(.*)$')
  if not host then
    return nil, 'not an http URL: ' .. url
  end
  port = tonumber(port) or 80
  path = (path == '' and '/' or path)
  local result, err
  local tcp = vim.uv.new_tcp()
  local ok = pcall(function()
    tcp:connect(host == 'localhost' and '127.0.0.1' or host, port, function(conn_err)
      if conn_err then
        err = conn_err
        return
      end
      local buffer = ''
      tcp:read_start(function(read_err, chunk)
        if read_err or not chunk then
          result = result or buffer:match('^HTTP/%d%.?%d? (%d+)')
          err = err or read_err
          return
        end
        buffer = buffer .. chunk
        local code = buffer:match('^HTTP/%d%.?%d? (%d+)')
        if code then
          result = code
        end
      end)
      tcp:write('GET ' .. path .. ' HTTP/1.1\r\nHost: ' .. host .. '\r\nConnection: close\r\n\r\n')
    end)
  end)
  if not ok then
    return nil, 'cannot connect to ' .. url .. ' (only numeric hosts and localhost are checked here)'
  end
  vim.wait(timeout_ms, function()
    return result ~= nil or err ~= nil
  end, 20)
  if not tcp:is_closing() then
    tcp:close()
  end
  return tonumber(result), err
end

--- The acceptance stats table: from the running server (workspace/executeCommand
--- ghostline.stats), else from `ghostline-lsp stats`. Returns the text, or nil and why not.
local function stats_table(clients, cmd)
  local client = clients[1]
  if client then
    local params = { command = 'ghostline.stats', arguments = { { days = 7 } } }
    local response, err
    if vim.fn.has('nvim-0.11') == 1 then
      response, err = client:request_sync('workspace/executeCommand', params, 5000)
    else
      response, err = client.request_sync('workspace/executeCommand', params, 5000)
    end
    if response and type(response.result) == 'string' then
      return response.result
    end
    return nil, tostring(err or (response and response.err and response.err.message) or 'no answer')
  end
  if cmd and vim.fn.executable(cmd[1]) == 1 then
    local done = vim.system({ cmd[1], 'stats' }, { text = true }):wait(5000)
    if done.code == 0 then
      return done.stdout
    end
    return nil, (done.stderr or '') .. ' (exit ' .. tostring(done.code) .. ')'
  end
  return nil, 'no ghostline-lsp to ask'
end

function M.check()
  local health = vim.health
  local ghostline = require('ghostline')
  health.start('ghostline')
  local v = vim.version()
  if vim.fn.has('nvim-0.10') == 0 then
    health.error('Neovim 0.10 or later is needed')
  elseif ghostline.uses_native() then
    health.ok(('Neovim %d.%d: built-in vim.lsp.inline_completion'):format(v.major, v.minor))
  else
    health.ok(('Neovim %d.%d: ghost text with extmarks'):format(v.major, v.minor))
  end
  local cmd = ghostline.server_cmd()
  if not cmd then
    health.error('ghostline-lsp not found', { 'put it on PATH or set cmd in setup{}' })
  elseif vim.fn.executable(cmd[1]) == 1 then
    health.ok('server: ' .. table.concat(cmd, ' '))
  else
    health.error('server not executable: ' .. cmd[1])
  end
  local clients = vim.lsp.get_clients({ name = 'ghostline' })
  if #clients > 0 then
    health.ok(('%d ghostline-lsp client(s) running; status: %s'):format(#clients, ghostline.status()))
  else
    health.info('no ghostline-lsp client running yet (it starts with a buffer of a configured filetype)')
  end
  if not ghostline.config.enabled then
    health.warn('suggestions are disabled (:Ghostline enable)')
  end
  local url = (ghostline.config.settings or {}).backendUrl or 'http://127.0.0.1:8123'
  local code, err = http_status(url:gsub('/+$', '') .. '/ready', 2000)
  if code == 200 then
    health.ok('backend ' .. url .. ' is ready')
  elseif code then
    health.warn(('backend %s answered /ready with %d (still loading?)'):format(url, code))
  else
    health.error('backend ' .. url .. ' unreachable' .. (err and (': ' .. tostring(err)) or ''),
      { 'start it with ./run.sh, or set settings.backendUrl' })
  end
  health.start('ghostline: acceptance stats')
  local settings = ghostline.config.settings or {}
  if settings.stats == false then
    health.info('local stats are off (settings.stats = false)')
  end
  if settings.shareStats then
    health.info('shareStats is on: counts per language (no text, no paths) go to the backend')
  end
  local text, why = stats_table(clients, cmd)
  if text then
    for line in text:gmatch('[^\n]+') do
      health.info(line)
    end
  else
    health.warn('acceptance stats unavailable: ' .. why)
  end
end

return M
