-- wrk script for bench/perf.sh, two modes:
-- * BODY_FILE: POST that one JSON body over and over (optionally as TOKEN);
-- * ACCOUNTS: a write mix (createPost, createComment, likePost) from seeded
--   accounts, lines of "<token> <post id>,<post id>,...";
--   with READ_BODY_FILE and READ_SHARE (e.g. 0.9), that share of requests
--   POST the read body instead (anonymously), the rest are the write mix.
-- Either way it counts answers that carry GraphQL errors.
local threads = {}
local accounts = {}
local read_body, read_share = nil, 0

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  errors, n = 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local token = os.getenv("TOKEN")
  if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
  local body_file = os.getenv("BODY_FILE")
  if body_file then
    local file = assert(io.open(body_file))
    wrk.body = file:read("*a")
    file:close()
    return
  end
  local read_file = os.getenv("READ_BODY_FILE")
  if read_file then
    local file = assert(io.open(read_file))
    read_body = file:read("*a")
    file:close()
    read_share = tonumber(os.getenv("READ_SHARE") or "0")
  end
  for line in io.lines(os.getenv("ACCOUNTS")) do
    local token, posts = line:match("^(%S+) (%S*)$")
    local ids = {}
    for id in posts:gmatch("[^,]+") do ids[#ids + 1] = id end
    accounts[#accounts + 1] = { token = token, posts = ids }
  end
  math.randomseed(os.time() + id)
end

function request()
  if #accounts == 0 then return wrk.format() end
  if read_body and math.random() < read_share then
    return wrk.format(nil, nil, { ["Content-Type"] = "application/json" }, read_body)
  end
  n = n + 1
  local a = accounts[math.random(#accounts)]
  local other = accounts[math.random(#accounts)]
  local post = other.posts[math.random(#other.posts)]
  local body
  if n % 3 == 0 then
    body = '{"query":"mutation { createPost(input: {title: \\"bench\\", body: \\"written under load\\"}) { id } }"}'
  elseif n % 3 == 1 then
    body = '{"query":"mutation($p: ID!) { createComment(input: {postId: $p, body: \\"bench\\"}) { id } }","variables":{"p":"' .. post .. '"}}'
  else
    body = '{"query":"mutation($p: ID!) { likePost(postId: $p) { id } }","variables":{"p":"' .. post .. '"}}'
  end
  return wrk.format(nil, nil, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. a.token }, body)
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then errors = errors + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("errors") end
  io.write(string.format("graphql_errors %d\n", total))
end
