-- Which file is about X? Embeds every file of a folder once, then answers
-- questions with baseten.vector.top_k: one C loop over the packed vectors,
-- no index, fast enough up to about 100k vectors.
--   lua examples/search.lua [FOLDER] [QUESTION...]   (from the repo root, after `make build`)
-- FOLDER defaults to examples/; with no question it asks two of its own.
-- With BASETEN_API_KEY set it embeds with Baseten (BASETEN_BASE_URL should
-- point at your embedding deployment's /v1, BASETEN_MODEL name its model);
-- without it, the bundled local server, whose embedding model is a plain
-- bag of words (spec/support/embed_mock.py).
local baseten = require("baseten")
local vector = baseten.vector

local folder = arg[1] or "examples"
local questions = { table.concat(arg, " ", 2) }
if questions[1] == "" then
  questions = { "stream the tokens of a chat completion as they arrive", "extract structured JSON with a schema" }
end

local server, client
if os.getenv("BASETEN_API_KEY") then
  client = baseten.new{ model = os.getenv("BASETEN_MODEL") }
else
  server = require("spec.support.server").start()
  client = baseten.new{ base_url = server.url, api_key = false }
end

-- the folder's files (not recursive): `ls` is POSIX; on Windows use `dir /b`
local names = {}
local ls = assert(io.popen('ls "' .. folder .. '"'))
for name in ls:lines() do
  if name:match("%.lua$") or name:match("%.md$") or name:match("%.txt$") then names[#names + 1] = name end
end
ls:close()
table.sort(names)

-- the first 2,000 characters of each file stand for it
local texts = {}
for i, name in ipairs(names) do
  local f = assert(io.open(folder .. "/" .. name, "rb"))
  texts[i] = f:read(2000) or ""
  f:close()
end

local status = 0
local vectors, err = client:embed(texts, { dimensions = 256, batch_size = 16 })
if not vectors then
  io.stderr:write("embedding failed: ", tostring(err), "\n")
  status = 1
else
  print(("embedded %d files of %s (%d dimensions each, %d bytes packed)"):format(
    #vectors, folder, #vectors[1], #vectors * #vectors[1] * 4))
  for _, q in ipairs(questions) do
    local qv = baseten.check(client:embed(q, { dimensions = 256 }))[1]
    local idx, scores = vector.top_k(qv, vectors, 3)
    print("\n" .. q)
    for rank, i in ipairs(idx) do print(("  %d. %-24s %.3f"):format(rank, names[i], scores[rank])) end
  end
end

client:close()
if server then server:stop() end
os.exit(status)
