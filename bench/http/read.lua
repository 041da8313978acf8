-- wrk: GET /v1/accounts/{id} of a random account.
package.path = os.getenv("BENCH_HTTP_DIR") .. "/?.lua;" .. package.path
local common = require("common")
setup, init = common.setup, common.init

function request()
    return wrk.format("GET", "/v1/accounts/" .. common.accounts[math.random(#common.accounts)])
end
