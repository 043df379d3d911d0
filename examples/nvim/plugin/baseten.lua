-- baseten.nvim (example plugin): the user commands. The work is in
-- lua/baseten_nvim/init.lua, loaded on first use.
--   :BasetenChat {prompt}   streams the reply into a new scratch buffer
--   :BasetenPlan {prompt}   an edit plan, shown filling in while its JSON streams
--   :BasetenAgent {prompt}  a tool loop over the editor's buffers (<C-c> cancels it)
--   :BasetenCancel          cancels every reply and agent still running
--   :BasetenSearch {query}  the chunks of this buffer closest to the query, in the quickfix list
-- luacheck: globals vim
if vim.g.loaded_baseten_nvim then return end
vim.g.loaded_baseten_nvim = true

vim.api.nvim_create_user_command("BasetenChat", function(opts)
  require("baseten_nvim").chat(opts.args)
end, { nargs = "+", desc = "Stream a chat reply from Baseten into a scratch buffer" })

vim.api.nvim_create_user_command("BasetenPlan", function(opts)
  require("baseten_nvim").plan(opts.args)
end, { nargs = "+", desc = "Ask Baseten for an edit plan, shown while its JSON streams" })

vim.api.nvim_create_user_command("BasetenAgent", function(opts)
  require("baseten_nvim").agent(opts.args)
end, { nargs = "+", desc = "Run a Baseten tool loop that can read your buffers, asking before each tool" })

vim.api.nvim_create_user_command("BasetenCancel", function()
  require("baseten_nvim").cancel_all()
end, { nargs = 0, desc = "Cancel every Baseten reply still streaming" })

vim.api.nvim_create_user_command("BasetenSearch", function(opts)
  require("baseten_nvim").search(opts.args)
end, { nargs = "+", desc = "Search this buffer by meaning (embeddings); results in the quickfix list" })
