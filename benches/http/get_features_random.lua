-- wrk script: GetFeatures on one of the demo's services (SERVICE from the environment:
-- fraud_detection_feature_service, the default, with its request-context amount, or
-- user_risk_service), both join keys drawn uniformly from `quiver bench`'s data set (key_0 ..
-- key_{KEYS-1}, KEYS from the environment, 10,000 by default), a new body each request; as issue
-- 12's first figures were taken (wrk, 1 thread, 32 connections), but over many keys, not one.
local keys = tonumber(os.getenv("KEYS") or "10000")
local service = os.getenv("SERVICE") or "fraud_detection_feature_service"
local seed = service == "fraud_detection_feature_service"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Tecton-key bench-key"
math.randomseed(7)
request = function()
  local context = seed and string.format('{"amount":%.2f}', math.random() * 1000) or "{}"
  local body = string.format(
    '{"params":{"workspaceName":"prod","featureServiceName":"%s",'
      .. '"joinKeyMap":{"user_id":"key_%d","merchant":"key_%d"},"requestContextMap":%s}}',
    service, math.random(0, keys - 1), math.random(0, keys - 1), context)
  return wrk.format(nil, nil, nil, body)
end
