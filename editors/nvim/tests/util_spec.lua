-- nvim --headless -l tests/util_spec.lua (from editors/nvim)
vim.opt.rtp:prepend(vim.fn.getcwd())
local util = require('ghostline.util')
local failures = 0
local function eq(got, want, what)
  if not vim.deep_equal(got, want) then
    failures = failures + 1
    io.stderr:write(('FAIL %s: got %s, want %s\n'):format(what, vim.inspect(got), vim.inspect(want)))
  end
end

eq(util.next_word('a + b'), 'a', 'word')
eq(util.next_word(' + b'), ' +', 'punctuation')
eq(util.next_word('\n    return x'), '\n    return', 'line break then word')
eq(util.next_word('   '), '   ', 'only spaces')
eq(util.next_line('x = 1\ny = 2'), 'x = 1', 'line')
eq(util.next_line('\n    y = 2\nz'), '\n    y = 2', 'break then line')
eq(util.next_line('tail'), 'tail', 'no break')
eq(util.display_lines('n)', ')'), { 'n' }, 'tail drawn once')
eq(util.display_lines('a\nb)', ')'), { 'a', 'b' }, 'tail on the last line')
eq(util.display_lines('a\nb', ''), { 'a', 'b' }, 'no tail')
-- 'é' is 2 bytes in UTF-8, 1 UTF-16 unit; '𝄞' is 4 bytes, 2 UTF-16 units, 1 UTF-32 unit.
local line = 'é𝄞x'
eq(util.byte_col(line, 1, 'utf-16'), 2, 'utf-16 → byte')
eq(util.byte_col(line, 3, 'utf-16'), 6, 'utf-16 surrogate pair → byte')
eq(util.byte_col(line, 2, 'utf-32'), 6, 'utf-32 → byte')
eq(util.byte_col(line, 6, 'utf-8'), 6, 'utf-8 → byte')
eq(util.byte_col(line, 99, 'utf-16'), #line, 'past the end clamps')
eq(util.lsp_col(line, 6, 'utf-16'), 3, 'byte → utf-16')
eq(util.lsp_col(line, 6, 'utf-32'), 2, 'byte → utf-32')
eq(util.lsp_col(line, 6, 'utf-8'), 6, 'byte → utf-8')

if failures > 0 then
  io.stderr:write(('util_spec: %d failed\n'):format(failures))
  os.exit(1)
end
io.stdout:write('util_spec: ok\n')
