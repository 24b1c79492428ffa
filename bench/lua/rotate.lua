-- wrk -tN -s bench/lua/rotate.lua URL -- MODE FILE N
-- Each request takes the next line of FILE; the lines are split between wrk's N threads (thread k takes
-- lines k, k+N, k+2N, ...), so no two threads send the same line.
--   "bearer":    GET URL with "Authorization: Bearer <line>"  (validate-token/ with many distinct tokens)
--   "path":      GET <line>, a path, with wrk's -H headers     (user/{id}/ over many ids)
--   "post":      POST URL with the body <line> (JSON), round and round (logins over many accounts)
--   "post-once": POST URL with the body <line>, each line once; a thread that has sent all of its lines
--                stops (single-use refresh tokens: none is ever presented twice)
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local lines = {}
local next_line = 0
local mode

function init(args)
  mode = args[1]
  local nthreads = tonumber(args[3])
  local n = 0
  for line in io.lines(args[2]) do
    if n % nthreads == id then
      lines[#lines + 1] = line
    end
    n = n + 1
  end
end

local json = {["Content-Type"] = "application/json"}

function request()
  next_line = next_line + 1
  if next_line > #lines then
    if mode == "post-once" then
      wrk.thread:stop()  -- a request is still due: a harmless one (never a used token again)
      return wrk.format("GET", "/api/v1/users/health/live/")
    else
      next_line = 1
    end
  end
  local line = lines[next_line]
  if mode == "bearer" then
    return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. line})
  elseif mode == "path" then
    return wrk.format("GET", line)
  else
    return wrk.format("POST", nil, json, line)
  end
end
