-- wrk script for bench/async: sends METHOD with a small JSON event (and, when ASYNC is
-- `event`, `X-Wisp-Invocation-Type: event`), and counts the answers whose status is
-- EXPECT. Usage: wrk … -s count.lua URL -- EXPECT METHOD ASYNC
-- At the end it prints `COUNTED expected=N other=N seconds=S`.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    expect = tonumber(args[1] or "200")
    wrk.method = args[2] or "GET"
    if wrk.method == "POST" then
        wrk.body = '{"action":"hello","name":"bench"}'
        wrk.headers["Content-Type"] = "application/json"
    end
    if args[3] == "event" then
        wrk.headers["X-Wisp-Invocation-Type"] = "event"
    end
    expected, other = 0, 0
end

function response(status, headers, body)
    if status == expect then
        expected = expected + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local e, o = 0, 0
    for _, thread in ipairs(threads) do
        e = e + thread:get("expected")
        o = o + thread:get("other")
    end
    io.write(string.format("COUNTED expected=%d other=%d seconds=%.3f\n", e, o, summary.duration / 1e6))
end
