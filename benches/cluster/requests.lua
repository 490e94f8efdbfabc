-- wrk script for benches/cluster/run.sh. MODE=read: GetFeatures of user_risk_service for a user
-- drawn uniformly from user_1..user_$KEYS (the rows run.sh loaded; a merchant no one wrote, the
-- same on every target: the demo seeds are only in the single node). MODE=write: the bulk rows
-- route (what `quiver load` sends) with the JSON Lines body in $ROWS_FILE. Prints one line,
-- `RESULT {json}`, at the end.
wrk.method = "POST"
wrk.headers["Authorization"] = "Tecton-key " .. os.getenv("ADMIN_KEY")
local keys = tonumber(os.getenv("KEYS"))
local template = '{"params":{"workspaceName":"prod","featureServiceName":"user_risk_service",'
  .. '"joinKeyMap":{"user_id":"user_%d","merchant":"merchant_none"},'
  .. '"requestContextMap":{},"allowPartialResults":false}}'

if os.getenv("MODE") == "write" then
  local file = assert(io.open(os.getenv("ROWS_FILE")))
  wrk.path = "/admin/workspaces/prod/feature-views/user_profile/rows"
  wrk.headers["Content-Type"] = "application/x-ndjson"
  wrk.body = file:read("*a")
  file:close()
else
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    local body = string.format(template, math.random(keys))
    return wrk.format(nil, "/api/v1/feature-service/get-features", nil, body)
  end
end

-- Non-2xx answers are wrk's errors.status; connect/read/write/timeout are socket errors.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"non2xx":%d,"socketErrors":%d,"p50Ms":%.3f,"p99Ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
