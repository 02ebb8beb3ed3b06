-- wrk script for bench/http_load.py: cycles through the requests listed in the file named by
-- the environment variable REQUESTS (one per line: METHOD<TAB>PATH[<TAB>JSON BODY]; "{n}" in
-- a body becomes a number unique to the run and "{run}" the value of RUN), sends the Authorization header from TOKEN
-- (and a Cache-Control header from CACHE_CONTROL, if set),
-- stops after MAX_REQUESTS responses, and prints one JSON line of results at the end.

local requests = {}
local index = 0
local counter = 0
local responses = 0
local max_requests = tonumber(os.getenv("MAX_REQUESTS") or "0")
local run = os.getenv("RUN") or ""
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["Content-Type"] = "application/json",
}
if os.getenv("CACHE_CONTROL") then
  headers["Cache-Control"] = os.getenv("CACHE_CONTROL")
end

for line in io.lines(os.getenv("REQUESTS")) do
  local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
  table.insert(requests, { method = method, path = path, body = body ~= "" and body or nil })
end

request = function()
  index = index % #requests + 1
  counter = counter + 1
  local r = requests[index]
  local body = r.body and r.body:gsub("{run}", run):gsub("{n}", tostring(counter)) or nil
  return wrk.format(r.method, r.path, headers, body)
end

response = function(status, headers, body)
  responses = responses + 1
  if max_requests > 0 and responses >= max_requests then
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
