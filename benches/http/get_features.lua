-- wrk script: POST the GetFeatures request in get_features.json (what tecton-client sends).
local file = assert(io.open("benches/http/get_features.json"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Tecton-key bench-admin-key"
wrk.body = file:read("*a")
file:close()
