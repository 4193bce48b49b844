-- wrk script for crates/bench/run.py, used only when oha is unavailable.
--
-- Configured through the environment (set by run.py):
--   BENCH_METHOD   HTTP method (default GET)
--   BENCH_HEADERS  extra headers, one "Name: value" per line
--   BENCH_BODY     a fixed request body, or
--   BENCH_BODIES   a file with one request body per line, picked at random
-- Counts responses by status in every thread and prints one line
--   BENCH_JSON {...}
-- at the end. wrk keeps a single latency histogram, so latency by status is not
-- available with this fallback.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end
wrk.body = os.getenv("BENCH_BODY")

local bodies = nil
local bodies_path = os.getenv("BENCH_BODIES")
if bodies_path and bodies_path ~= "" then
  bodies = {}
  for line in io.lines(bodies_path) do
    if line ~= "" then
      table.insert(bodies, line)
    end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  math.randomseed(os.time() + #threads)
end

if bodies then
  function request()
    return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    if counts then
      for status, count in pairs(counts) do
        merged[status] = (merged[status] or 0) + count
      end
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
