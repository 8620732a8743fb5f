-- wrk script: POSTs one JSON body (the file BODY_FILE) over and over,
-- optionally as a signed-in user (TOKEN), and counts answers with GraphQL errors.
local token = os.getenv("TOKEN")
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  errors = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
  local file = assert(io.open(os.getenv("BODY_FILE")))
  wrk.body = file:read("*a")
  file:close()
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then errors = errors + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("errors") end
  io.write(string.format("graphql_errors %d\n", total))
end
