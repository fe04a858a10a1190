-- aidiag for Neovim: local bug diagnostics for C.
--
-- Put editors/nvim on the runtimepath and call require("aidiag").setup({...}). Works on
-- Neovim 0.11+ (vim.lsp.config / vim.lsp.enable), 0.8-0.10 (vim.lsp.start) and 0.7
-- (vim.lsp.start_client).
local M = {}

local defaults = {
  -- The server command; found on PATH, or in this repository's target/ when nil.
  cmd = nil,
  filetypes = { "c" },
  root_markers = { ".git", ".aidiag.toml" },
  -- Sent as initializationOptions, e.g. { debounceMs = 150 }.
  settings = {},
}

-- The aidiag binary: on PATH, or built in the repository this plugin lives in.
local function find_binary()
  if vim.fn.executable("aidiag") == 1 then
    return "aidiag"
  end
  local source = debug.getinfo(1, "S").source:sub(2)
  -- <repo>/editors/nvim/lua/aidiag/init.lua -> <repo>
  local repo = vim.fn.fnamemodify(source, ":p:h:h:h:h:h")
  for _, profile in ipairs({ "release", "debug" }) do
    local candidate = repo .. "/target/" .. profile .. "/aidiag"
    if vim.fn.executable(candidate) == 1 then
      return candidate
    end
  end
  return nil
end

local function root_dir(bufnr, markers)
  local file = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  for _, marker in ipairs(markers) do
    local found = vim.fn.finddir(marker, dir .. ";")
    if found == "" then
      found = vim.fn.findfile(marker, dir .. ";")
    end
    if found ~= "" then
      return vim.fn.fnamemodify(found, ":p:h:h")
    end
  end
  return dir
end

--- Registers the aidiag language server for C buffers. Returns false (and says why) when the
--- binary cannot be found.
function M.setup(opts)
  opts = vim.tbl_deep_extend("force", defaults, opts or {})
  local cmd = opts.cmd
  if cmd == nil then
    local binary = find_binary()
    if binary == nil then
      vim.notify(
        "aidiag: binary not found; put `aidiag` on PATH or pass cmd = { '/path/to/aidiag', 'lsp' }",
        vim.log.levels.ERROR
      )
      return false
    end
    cmd = { binary, "lsp" }
  end
  M.cmd = cmd

  if vim.lsp.config ~= nil and vim.lsp.enable ~= nil then
    vim.lsp.config("aidiag", {
      cmd = cmd,
      filetypes = opts.filetypes,
      root_markers = opts.root_markers,
      init_options = opts.settings,
      -- Sent as workspace/didChangeConfiguration after start; the same settings, so that
      -- both ways agree.
      settings = { aidiag = opts.settings },
    })
    vim.lsp.enable("aidiag")
    M.create_commands()
    return true
  end

  local config = function(bufnr)
    return {
      name = "aidiag",
      cmd = cmd,
      root_dir = root_dir(bufnr, opts.root_markers),
      init_options = opts.settings,
      settings = { aidiag = opts.settings },
    }
  end
  local start = function(bufnr)
    if vim.lsp.start ~= nil then
      vim.lsp.start(config(bufnr), { bufnr = bufnr })
    else
      -- Neovim 0.7: one client, attached to every C buffer.
      if M.client_id == nil or vim.lsp.get_client_by_id(M.client_id) == nil then
        M.client_id = vim.lsp.start_client(config(bufnr))
      end
      vim.lsp.buf_attach_client(bufnr, M.client_id)
    end
  end
  M.create_commands()
  local group = vim.api.nvim_create_augroup("aidiag", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = opts.filetypes,
    callback = function(args)
      start(args.buf)
    end,
  })
  -- Buffers opened before setup().
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(opts.filetypes, vim.bo[bufnr].filetype) then
      start(bufnr)
    end
  end
  return true
end

--- Runs one of the server's commands (workspace/executeCommand) for buffer `bufnr` and returns
--- its result, or nil and an error message.
local function execute(bufnr, command, arguments)
  local replies, err = vim.lsp.buf_request_sync(
    bufnr,
    "workspace/executeCommand",
    { command = command, arguments = arguments },
    5000
  )
  if replies == nil then
    return nil, "aidiag did not answer: " .. tostring(err)
  end
  for _, reply in pairs(replies) do
    if reply.error ~= nil then
      return nil, reply.error.message
    end
    if reply.result ~= nil then
      return reply.result
    end
  end
  return nil, "aidiag is not attached to this buffer"
end

--- Checks the function under the cursor again (its cached findings are dropped) and republishes.
function M.reanalyze(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local cursor = vim.api.nvim_win_get_cursor(0)
  local line = vim.api.nvim_buf_get_lines(bufnr, cursor[1] - 1, cursor[1], false)[1] or ""
  -- The server counts UTF-16 units by default.
  local character = vim.str_utfindex(line, cursor[2])
  return execute(bufnr, "aidiag.reanalyze", {
    vim.uri_from_bufnr(bufnr),
    { line = cursor[1] - 1, character = character },
  })
end

--- What the local model is doing: a table with `state` ("off", "loading", "ready",
--- "unavailable") and, when ready, `model`, `verdicts`, `review`, `explanations`, `fixes`.
function M.model_status(bufnr)
  return execute(bufnr or vim.api.nvim_get_current_buf(), "aidiag.modelStatus", {})
end

--- :AidiagReanalyze and :AidiagModelStatus.
function M.create_commands()
  vim.api.nvim_create_user_command("AidiagReanalyze", function()
    local result, err = M.reanalyze()
    if result == nil then
      vim.notify("aidiag: " .. err, vim.log.levels.ERROR)
    end
  end, { desc = "aidiag: check the function under the cursor again" })
  vim.api.nvim_create_user_command("AidiagModelStatus", function()
    local status, err = M.model_status()
    if status == nil then
      vim.notify("aidiag: " .. err, vim.log.levels.ERROR)
      return
    end
    local parts = { "model: " .. status.state }
    for _, key in ipairs({ "model", "verdicts", "review", "explanations", "fixes", "reason" }) do
      if status[key] ~= nil then
        table.insert(parts, key .. "=" .. tostring(status[key]))
      end
    end
    vim.notify("aidiag " .. table.concat(parts, ", "), vim.log.levels.INFO)
  end, { desc = "aidiag: show what the local model is doing" })
end

return M
