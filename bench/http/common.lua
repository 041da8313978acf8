-- Shared by the wrk scripts of bench/run's HTTP phase: the API key and the accounts come from the
-- environment (BENCH_HTTP_KEY) and a file of account ids (BENCH_HTTP_ACCOUNTS), one per line.
local common = {}

function common.load_accounts()
    local accounts = {}
    for line in io.lines(os.getenv("BENCH_HTTP_ACCOUNTS")) do
        accounts[#accounts + 1] = line
    end
    return accounts
end

-- A random version-4 UUID (clients may not choose version 8, the bank's namespace).
function common.uuid()
    local function hex(n) return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1)) end
    return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-" .. string.format("%x", math.random(8, 11)) .. hex(3) .. "-" .. hex(6) .. hex(6)
end

-- Two different accounts, at random.
function common.pair(accounts)
    local debit = math.random(#accounts)
    local credit = math.random(#accounts - 1)
    if credit >= debit then credit = credit + 1 end
    return accounts[debit], accounts[credit]
end

function common.transfer_json()
    local debit, credit = common.pair(common.accounts)
    return string.format('{"id":"%s","debit_account_id":"%s","credit_account_id":"%s","amount":1,"currency":"CNY"}',
        common.uuid(), debit, credit)
end

-- Each wrk thread seeds its own generator, so threads never draw the same ids.
local next_thread = 0
function common.setup(thread)
    next_thread = next_thread + 1
    thread:set("thread_number", next_thread)
end

-- Every script's init: the thread's generator, the headers, and common.accounts.
function common.init()
    math.randomseed(os.time() * 1000 + thread_number)
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_HTTP_KEY")
    wrk.headers["Content-Type"] = "application/json"
    common.accounts = common.load_accounts()
end

return common
