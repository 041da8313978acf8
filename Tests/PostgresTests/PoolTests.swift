import Foundation
import Postgres
import Synchronization
import Testing
import TestSupport

struct Rollback: Error {}

@Suite("Connection pool and transactions")
struct PoolTests {
    @Test func transactionCommitsOnReturnAndRollsBackOnThrow() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { try await $0.query("CREATE TABLE items (n int)") }
            try await pool.withTransaction { try await $0.query("INSERT INTO items VALUES (1)") }
            await #expect(throws: Rollback.self) {
                try await pool.withTransaction { connection throws in
                    try await connection.query("INSERT INTO items VALUES (2)")
                    throw Rollback()
                }
            }
            // A failed statement inside the transaction also rolls everything back.
            await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { connection throws in
                    try await connection.query("INSERT INTO items VALUES (3)")
                    try await connection.query("INSERT INTO items VALUES ('not a number')")
                }
            }
            let rows = try await pool.withConnection { try await $0.query("SELECT array_agg(n ORDER BY n)::int8[] FROM items") }
            #expect(try rows[0].decode([Int64].self, at: 0) == [1])
        }
    }

    @Test("a connection that answered 'cannot serve now' (a read-only standby after a failover) is replaced, not reused")
    func aConnectionToAServerThatCannotServeIsReplaced() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            let backend = "SELECT pg_backend_pid()"
            let first = try await pool.withConnection { try await $0.query(backend)[0].decode(Int32.self, at: 0) }
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection throws in
                    // As on a standby: every write of this session fails with 25006.
                    try await connection.query("SET default_transaction_read_only = on")
                    try await connection.query("CREATE TABLE refused (n int)")
                }
            }
            #expect(error?.sqlState == SQLState.readOnlySQLTransaction)
            #expect(error?.isUnavailable == true)
            let second = try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE accepted (n int)")
                return try await connection.query(backend)[0].decode(Int32.self, at: 0)
            }
            #expect(second != first)
        }
    }

    @Test("when one connection finds its server gone (25006: a demoted primary), the idle ones to the same server are dropped with it")
    func idleConnectionsGoWithTheirServer() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 3) { pool throws in
            // Three connections open at once, then idle.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 { group.addTask { try await pool.withConnection { _ = try await $0.query("SELECT pg_sleep(0.2)") } } }
                try await group.waitForAll()
            }
            #expect(await pool.usage().open == 3)
            await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection throws in
                    try await connection.query("SET default_transaction_read_only = on")
                    try await connection.query("CREATE TABLE refused (n int)")
                }
            }
            let usage = await pool.usage()
            #expect(usage.open == 0 && usage.leased == 0, "\(usage)")
            // A lease just opens a new connection.
            try await pool.withConnection { _ = try await $0.query("CREATE TABLE accepted (n int)") }
        }
    }

    @Test("requireWrites refuses a server that takes no writes with 25006, and the pool drops the connection")
    func requireWrites() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            try await pool.withConnection { try await $0.requireWrites() }
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection throws in
                    try await connection.query("SET default_transaction_read_only = on")
                    try await connection.requireWrites()
                }
            }
            #expect(error?.sqlState == SQLState.readOnlySQLTransaction && error?.isServerGone == true)
            #expect(await pool.usage().open == 0)
        }
    }

    @Test func serializationFailureRunsTheWholeClosureAgain() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 2) { pool throws in
            try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
                try await connection.query("INSERT INTO counter VALUES (1, 0)")
            }
            let attempts = Atomic<Int>(0)
            let final = try await pool.withTransaction(isolation: .repeatableRead) { connection throws in
                let attempt = attempts.add(1, ordering: .relaxed).newValue
                let n = try await connection.query("SELECT n FROM counter WHERE id = 1")[0].decode(Int32.self, at: 0)
                if attempt == 1 {
                    // Another transaction commits a change to the row this snapshot has read.
                    try await pool.withConnection { try await $0.query("UPDATE counter SET n = n + 100 WHERE id = 1") }
                }
                try await connection.query("UPDATE counter SET n = $1 WHERE id = 1", [n + 1])
                return n + 1
            }
            #expect(attempts.load(ordering: .relaxed) == 2)
            #expect(final == 101)
            let stored = try await pool.withConnection { try await $0.query("SELECT n FROM counter")[0].decode(Int32.self, at: 0) }
            #expect(stored == 101)
        }
    }

    @Test func retriesAreBounded() async throws {
        try await TestDatabase.withPool(template: .empty, configure: { $0.maxTransactionRetries = 2 }) { pool throws in
            let attempts = Atomic<Int>(0)
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { connection throws in
                    attempts.add(1, ordering: .relaxed)
                    try await connection.query("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
                }
            }
            #expect(error?.sqlState == SQLState.serializationFailure)
            #expect(attempts.load(ordering: .relaxed) == 3)
        }
    }

    @Test func exhaustedPoolTimesOutWithoutDeadlock() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1, configure: { $0.leaseTimeout = .milliseconds(200) }) { pool throws in
            let (holding, holder) = AsyncStream<Void>.makeStream()
            try await withThrowingTaskGroup { group in
                group.addTask {
                    try await pool.withConnection { connection in
                        holder.yield()
                        try await connection.query("SELECT pg_sleep(1)")
                    }
                }
                for await _ in holding { break }
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.withConnection { try await $0.query("SELECT 1") }
                }
                #expect(error?.code == .leaseTimeout)
                try await group.waitForAll()
            }
            // Once the holder is done, the connection is available again.
            let one = try await pool.withConnection { try await $0.query("SELECT 1::int4")[0].decode(Int32.self, at: 0) }
            #expect(one == 1)
            let usage = await pool.usage()
            #expect(usage.leased == 0 && usage.waiting == 0 && usage.open <= 1)
        }
    }

    @Test func waitersAreServedInTurnUnderContention() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 2) { pool throws in
            let total = try await withThrowingTaskGroup(of: Int64.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        try await pool.withConnection { try await $0.query("SELECT $1::int8", [Int64(i)])[0].decode(Int64.self, at: 0) }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(total == (0..<50).reduce(0, +))
            #expect(await pool.usage().open <= 2)
        }
    }

    @Test func terminatedBackendIsReplaced() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            let first = try await pool.withConnection { $0.backendPID }
            let conninfo = try await TestDatabase.serverConninfo()
            let admin = try await PostgresConnection.connect(conninfo: conninfo, database: "postgres", statementTimeoutMilliseconds: 10_000, threadPool: .singleton)
            let terminated = try await admin.query("SELECT pg_terminate_backend($1::int4, 5000)", [first])
            #expect(try terminated[0].decode(Bool.self, at: 0))
            // The dead connection is detected while idle and not handed out again.
            let (second, answer) = try await pool.withConnection { ($0.backendPID, try await $0.query("SELECT 1::int4")[0].decode(Int32.self, at: 0)) }
            #expect(second != first)
            #expect(answer == 1)

            // A backend killed while leased fails that caller, and the pool replaces it afterwards.
            await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection throws in
                    try await admin.query("SELECT pg_terminate_backend($1::int4, 5000)", [connection.backendPID])
                    try await connection.query("SELECT 1")
                }
            }
            let third = try await pool.withConnection { $0.backendPID }
            #expect(third != second)
        }
    }

    @Test func cancellingTheTaskCancelsTheQueryAndTheConnectionIsReused() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            let pid = try await pool.withConnection { $0.backendPID }
            let started = ContinuousClock.now
            let sleeper = Task {
                try await pool.withTransaction { try await $0.query("SELECT pg_sleep(30)") }
            }
            try await Task.sleep(for: .milliseconds(300))
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            #expect(ContinuousClock.now - started < .seconds(10))
            // Same backend, back in a clean state: outside any transaction block (where SAVEPOINT is
            // refused with 25P01), and answering.
            let (after, savepointError) = try await pool.withConnection { connection in
                let error = await #expect(throws: PostgresError.self) { try await connection.query("SAVEPOINT probe") }
                return (connection.backendPID, error?.sqlState)
            }
            #expect(after == pid)
            #expect(savepointError == "25P01")
        }
    }

    @Test func closedPoolRefusesLeases() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            await pool.close()
            let error = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
            #expect(error?.code == .poolClosed)
        }
    }
}
