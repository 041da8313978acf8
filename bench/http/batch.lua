-- wrk: POST /v1/transfers/batch, BENCH_HTTP_BATCH_SIZE posted transfers (one atomic batch) per request.
package.path = os.getenv("BENCH_HTTP_DIR") .. "/?.lua;" .. package.path
local common = require("common")
setup, init = common.setup, common.init
local size = tonumber(os.getenv("BENCH_HTTP_BATCH_SIZE"))

function request()
    local transfers = {}
    for i = 1, size do transfers[i] = common.transfer_json() end
    return wrk.format("POST", "/v1/transfers/batch", nil, '{"atomic":true,"transfers":[' .. table.concat(transfers, ",") .. "]}")
end
