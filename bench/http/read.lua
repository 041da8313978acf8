-- wrk: GET /v1/accounts/{id} of a random account.
package.path = os.getenv("BENCH_HTTP_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local accounts

setup = common.setup
function init(args)
    common.init()
    accounts = common.load_accounts()
end

function request()
    return wrk.format("GET", "/v1/accounts/" .. accounts[math.random(#accounts)])
end
