-- wrk: POST /v1/transfers, one posted transfer of 1 fen between two random accounts, a fresh id each.
package.path = os.getenv("BENCH_HTTP_DIR") .. "/?.lua;" .. package.path
local common = require("common")
setup, init = common.setup, common.init

function request()
    return wrk.format("POST", "/v1/transfers", nil, common.transfer_json())
end
