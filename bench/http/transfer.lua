-- wrk: POST /v1/transfers, one posted transfer of 1 fen between two random accounts, a fresh id each.
package.path = os.getenv("BENCH_HTTP_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local accounts

setup = common.setup
function init(args)
    common.init()
    accounts = common.load_accounts()
end

function request()
    return wrk.format("POST", "/v1/transfers", nil, common.transfer_json(accounts))
end
