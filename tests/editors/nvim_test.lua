-- Headless Neovim test: the plugin starts aidiag, the warning arrives, hover explains it and the
-- preferred quick fix is applied to the buffer; the warning then goes away.
-- Run: nvim --headless -u NONE -i NONE -n -c 'luafile tests/editors/nvim_test.lua' FILE
local function fail(message)
  io.stderr:write("FAIL: " .. message .. "\n")
  vim.cmd("cquit 1")
end

-- Every message the server shows (window/showMessage goes through vim.notify).
local notified = {}
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(notified, tostring(message))
  return notify(message, level, opts)
end

local repo = vim.fn.getcwd()
vim.opt.runtimepath:prepend(repo .. "/editors/nvim")
vim.cmd("filetype on")
local ok = require("aidiag").setup({ cmd = { repo .. "/target/debug/aidiag", "lsp" }, settings = { debounceMs = 50 } })
if not ok then
  fail("setup returned false")
end
vim.cmd("edit " .. vim.fn.fnameescape(vim.env.AIDIAG_TEST_FILE))
local buf = vim.api.nvim_get_current_buf()

if not vim.wait(15000, function() return #vim.diagnostic.get(buf) > 0 end, 20) then
  fail("no diagnostics within 15 s")
end
local d = vim.diagnostic.get(buf)[1]
if d.code ~= "leak-on-error" or d.lnum ~= 13 or d.col ~= 2 then
  fail(string.format("unexpected diagnostic %s at %d:%d: %s", tostring(d.code), d.lnum, d.col, d.message))
end
print("diagnostic: " .. d.message)

-- The plugin's commands: the model status (off here: nothing asks for the model) and
-- re-analysing the function under the cursor.
local status, err = require("aidiag").model_status(buf)
if status == nil or status.state ~= "off" then
  fail("model status: " .. vim.inspect(status) .. " " .. tostring(err))
end
vim.api.nvim_win_set_cursor(0, { 14, 3 })
local reanalyzed, err2 = require("aidiag").reanalyze(buf)
if reanalyzed == nil or reanalyzed.functions ~= 1 then
  fail("reanalyze: " .. vim.inspect(reanalyzed) .. " " .. tostring(err2))
end
vim.cmd("AidiagModelStatus")
print("commands: ok")

-- Settings from the plugin arrived without complaint; a wrong one sent later through
-- workspace/didChangeConfiguration is named in one message.
for _, message in ipairs(notified) do
  if message:find("setting", 1, true) then
    fail("the server complained about the plugin's settings: " .. message)
  end
end
local client = (vim.lsp.get_clients or vim.lsp.get_active_clients)({ name = "aidiag" })[1]
local change = { settings = { aidiag = { debounceMs = -5 } } }
if vim.fn.has("nvim-0.11") == 1 then
  client:notify("workspace/didChangeConfiguration", change)
else
  client.notify("workspace/didChangeConfiguration", change)
end
if not vim.wait(5000, function()
  for _, message in ipairs(notified) do
    if message:find("aidiag.debounceMs", 1, true) and message:find("-5", 1, true) then
      return true
    end
  end
  return false
end, 20) then
  fail("no message about the wrong debounceMs: " .. vim.inspect(notified))
end
print("settings: ok")

local position = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 13, character = 3 } }
local hover = vim.lsp.buf_request_sync(buf, "textDocument/hover", position, 5000)
local text = ""
for _, reply in pairs(hover or {}) do
  if reply.result then
    text = reply.result.contents.value
  end
end
if not text:find("Why it matters", 1, true) then
  fail("hover has no explanation: " .. text)
end
print("hover: ok")

local params = {
  textDocument = { uri = vim.uri_from_bufnr(buf) },
  range = { start = { line = 13, character = 2 }, ["end"] = { line = 13, character = 13 } },
  context = { diagnostics = vim.lsp.diagnostic.from and {} or {} },
}
local replies = vim.lsp.buf_request_sync(buf, "textDocument/codeAction", params, 5000)
local action
for _, reply in pairs(replies or {}) do
  for _, candidate in ipairs(reply.result or {}) do
    if candidate.isPreferred and action == nil then
      action = candidate
    end
  end
end
if action == nil then
  fail("no preferred code action")
end
print("code action: " .. action.title)
vim.lsp.util.apply_workspace_edit(action.edit, "utf-16")
local lines = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
if not lines:find("goto err_free;", 1, true) then
  fail("the fix did not land in the buffer:\n" .. lines)
end
if not vim.wait(15000, function() return #vim.diagnostic.get(buf) == 0 end, 20) then
  fail("the warning did not go after the fix")
end
print("PASS")
vim.cmd("qall!")
