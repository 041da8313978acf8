import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Concurrent single transfers share one ledger call, and each still gets what it would have had
/// alone. A transaction holding a lock on an account keeps the first call waiting while the others
/// queue, so the groups these tests build are certain, not a matter of timing.
@Suite("Ledger: group commit")
struct GroupCommitTests {
    struct Setup {
        let bank: Bank
        let tenant = UUID()
        let tenantAccount: UUID
        let bankAccount: UUID
        let other: UUID
        let committer: GroupCommit

        init(_ pool: PostgresPool, maxQueued: Int = 100) async throws {
            bank = Bank(pool)
            tenantAccount = try await bank.ledger.createAccount(NewAccount(currency: "CNY", ownerID: tenant, code: "operating")).account.id
            bankAccount = try await bank.open()
            other = try await bank.open()
            try await bank.post(bankAccount, tenantAccount, 1_000)
            var limits = GroupCommit.Limits()
            limits.maxCallsInFlight = 1
            limits.maxQueued = maxQueued
            committer = GroupCommit(pool: pool, limits: limits)
        }

        var tenantPrincipal: Principal { Principal(ownerID: tenant, reservedCodes: ["deposit"]) }

        func post(_ debit: UUID, _ credit: UUID, _ amount: Int64, code: String = "transfer", metadata: JSONB? = nil) -> TransferRequest {
            TransferRequest(id: UUID(), action: .post(debit: debit, credit: credit, amount: amount, currency: "CNY"), code: code, metadata: metadata)
        }

        /// Submits `first`, which waits on a lock, then `queued` while it waits: they form one group.
        /// `whileQueued` runs while they wait.
        func submitGrouped(first: TransferRequest, queued: [(TransferRequest, Principal?, [String: String])],
                           whileQueued: () async throws -> Void = {}) async throws
            -> (first: Task<TransferResult, any Error>, queued: [Task<TransferResult, any Error>]) {
            try await bank.pool.withTransaction { blocker in
                try await blocker.query("SELECT 1 FROM ledger.accounts WHERE id = $1 FOR UPDATE", [other])
                let firstTask = Task { try await committer.createTransfer(first) }
                try await until { committer.load == (0, 1) }
                let tasks = queued.map { request, principal, settings in
                    Task { try await PostgresSession.$settings.withValue(settings) { try await committer.createTransfer(request, principal: principal) } }
                }
                try await until { committer.load.waiting == queued.count }
                try await whileQueued()
                return (firstTask, tasks)
            }
        }

        func until(_ condition: () -> Bool) async throws {
            for _ in 0..<2_000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
            #expect(condition(), "the group did not form")
        }

        /// The transaction time of each transfer: transfers of one call share it.
        func createdAt(_ ids: [UUID]) async throws -> [Date] {
            try await bank.pool.withConnection { connection in
                try await ids.asyncMap { id in try await connection.query("SELECT created_at FROM ledger.transfers WHERE id = $1", [id])[0].decode(Date.self, at: 0) }
            }
        }
    }

    static func attribution(_ actor: UUID, request: String) -> [String: String] {
        ["techbank.actor_id": actor.uuidString.lowercased(), "techbank.key_id": UUID().uuidString.lowercased(), "techbank.request_id": request]
    }

    @Test("one call carries several callers' transfers: each is checked against its own principal and journaled with its own caller")
    func eachTransferKeepsItsPrincipalAndAttribution() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            let mine = s.post(s.tenantAccount, s.other, 10)
            let notMine = s.post(s.bankAccount, s.tenantAccount, 10)
            let reserved = s.post(s.tenantAccount, s.other, 10, code: "deposit")
            let operators = s.post(s.bankAccount, s.other, 20)
            let tenantCaller = Self.attribution(s.tenant, request: "req-tenant")
            let operatorCaller = Self.attribution(UUID(), request: "req-operator")
            let (first, queued) = try await s.submitGrouped(first: s.post(s.other, s.bankAccount, 1), queued: [
                (mine, s.tenantPrincipal, tenantCaller), (notMine, s.tenantPrincipal, tenantCaller),
                (reserved, s.tenantPrincipal, tenantCaller), (operators, nil, operatorCaller),
            ])
            #expect(try await first.value.outcome == .ok)
            let results = try await queued.asyncMap { try await $0.value }
            #expect(results.map(\.outcome) == [.ok, .accountNotFound, .codeReserved, .ok])
            #expect(results.map(\.detail) == [nil, "debit_account_id", "code", nil])
            #expect(results.allSatisfy { $0.index == 0 })
            #expect(results[0].transfer?.id == mine.id && results[3].transfer?.id == operators.id)

            let times = try await s.createdAt([first.value.id, mine.id, operators.id])
            #expect(times[1] == times[2], "the queued transfers shared one transaction")
            #expect(times[0] != times[1], "the first went alone")
            let journaled = try await pool.withConnection { connection in
                try await connection.query(
                    "SELECT subject_id, actor_id, key_id, request_id FROM ledger.journal WHERE subject_id = ANY($1) ORDER BY request_id",
                    [[mine.id, operators.id]])
            }
            #expect(journaled.count == 2)
            for (row, (request, caller)) in zip(journaled, [(operators, operatorCaller), (mine, tenantCaller)]) {
                #expect(try row.decode(UUID.self, at: 0) == request.id)
                #expect(try row.decode(UUID?.self, at: 1)?.uuidString.lowercased() == caller["techbank.actor_id"])
                #expect(try row.decode(UUID?.self, at: 2)?.uuidString.lowercased() == caller["techbank.key_id"])
                #expect(try row.decode(String?.self, at: 3) == caller["techbank.request_id"])
            }
            #expect(try await s.bank.journal.verify().isIntact)
            #expect(try await s.bank.balances(s.tenantAccount) == Balances(debitsPosted: 10, creditsPosted: 1_000))
            try await s.bank.expectSound()
        }
    }

    @Test("an element cannot name its own owner in a call made for a principal: the call is refused whole")
    func anElementCannotOverrideTheCallsPrincipal() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            let element = #"[{"id":"\#(UUID())","kind":"posted","debit_account_id":"\#(s.bankAccount)","credit_account_id":"\#(s.tenantAccount)","amount":5,"currency":"CNY","owner_id":"\#(s.bankAccount)"}]"#
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection in
                    try await connection.query("SELECT * FROM ledger.create_transfers($1, false, $2, NULL)", [JSONB(element), s.tenant])
                }
            }
            #expect(error?.sqlState == "TB003")
            try await s.bank.expectSound()
        }
    }

    @Test("a grouped transfer refused changes nothing, as alone: resolving an expired hold does not release it")
    func aRefusedGroupedTransferChangesNothing() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            let hold = try await s.bank.hold(s.bankAccount, s.other, 70, timeout: 1)
            try await Task.sleep(for: .milliseconds(1_500))
            let post = TransferRequest(id: UUID(), action: .postPending(pendingID: hold.id, amount: nil))
            #expect(try await s.committer.createTransfer(post).outcome == .pendingTransferExpired)
            #expect(try await s.bank.resolutions()[hold.id] == nil, "left for the sweep, as an atomic transfer alone leaves it")
            #expect(try await s.bank.balances(s.other) == Balances(creditsPending: 70))
            #expect(try await s.bank.ledger.expirePending() == 1)
        }
    }

    @Test("a transfer that makes its group's call fail is retried alone: the others land, it alone is refused")
    func aCallFailingAsAWholeIsRetriedTransferByTransfer() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            // Valid JSON, but text PostgreSQL cannot store: the whole call's parameter is refused.
            let poisoned = s.post(s.bankAccount, s.other, 5, metadata: JSONB(#"{"note":"\u0000"}"#))
            let fine = [s.post(s.bankAccount, s.other, 1), s.post(s.bankAccount, s.other, 2)]
            let (first, queued) = try await s.submitGrouped(first: s.post(s.other, s.bankAccount, 1),
                                                           queued: [(fine[0], nil, [:]), (poisoned, nil, [:]), (fine[1], nil, [:])])
            #expect(try await first.value.outcome == .ok)
            #expect(try await queued[0].value.outcome == .ok)
            #expect(try await queued[2].value.outcome == .ok)
            await #expect(throws: LedgerError.self) { try await queued[1].value }
            #expect(try await s.bank.ledger.transfer(poisoned.id) == nil)
            try await s.bank.expectSound()
        }
    }

    @Test("beyond maxQueued waiting transfers a caller is refused at once as unavailable, and nothing is applied for it")
    func aFullQueueRefusesAtOnce() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool, maxQueued: 2)
            let refused = s.post(s.bankAccount, s.other, 3)
            let (first, queued) = try await s.submitGrouped(
                first: s.post(s.other, s.bankAccount, 1),
                queued: [(s.post(s.bankAccount, s.other, 1), nil, [:]), (s.post(s.bankAccount, s.other, 2), nil, [:])]
            ) {
                let error = await #expect(throws: PostgresError.self) { try await s.committer.createTransfer(refused) }
                #expect(error?.isUnavailable == true)
            }
            #expect(try await first.value.outcome == .ok)
            for task in queued { #expect(try await task.value.outcome == .ok) }
            #expect(try await s.bank.ledger.transfer(refused.id) == nil)
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var values: [T] = []
        for element in self { values.append(try await transform(element)) }
        return values
    }
}
