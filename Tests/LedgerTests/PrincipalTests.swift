import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// A batch made on behalf of an owner (`Principal`) is checked by the database under the account
/// locks, against stored state and the batch's own successes only.
@Suite("Ledger: principals")
struct PrincipalTests {
    /// Two owners' accounts: `mine` (funded with 1000 from `source`) and `theirs` (another owner's).
    struct Setup {
        let bank: Bank
        let me: UUID
        let mine: UUID
        let myOther: UUID
        let theirs: UUID
        let theirOther: UUID

        var principal: Principal { Principal(ownerID: me, reservedCodes: ["escrow_fund", "deposit"]) }

        init(_ pool: PostgresPool) async throws {
            let bank = Bank(pool), me = UUID()
            self.bank = bank
            self.me = me
            mine = try await bank.ledger.createAccount(NewAccount(currency: "CNY", ownerID: me, code: "operating")).account.id
            myOther = try await bank.ledger.createAccount(NewAccount(currency: "CNY", ownerID: me, code: "operating")).account.id
            theirs = try await bank.open()
            theirOther = try await bank.open()
        }

        func batch(_ requests: [TransferRequest], atomic: Bool = false) async throws -> [TransferResult] {
            try await bank.ledger.createTransfers(requests, atomic: atomic, principal: principal)
        }
    }

    @Test("a principal cannot debit another owner's account: it looks absent")
    func anotherOwnersAccountLooksAbsent() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            let results = try await s.batch([TransferRequest(id: UUID(), action: .post(debit: s.theirs, credit: s.mine, amount: 5, currency: "CNY"))])
            #expect(results[0].outcome == .accountNotFound && results[0].detail == "debit_account_id")
            let mine = try await s.batch([TransferRequest(id: UUID(), action: .post(debit: s.mine, credit: s.theirs, amount: 5, currency: "CNY"))])
            #expect(mine[0].outcome == .ok, "paying another owner is fine")
            #expect(try await s.bank.balances(s.theirs) == Balances(creditsPosted: 5))
            try await s.bank.expectSound()
        }
    }

    @Test("an attacker's batch that redeclares a stored hold's id cannot post or void that hold")
    func aRedeclaredHoldInTheBatchDoesNotLendItsOwner() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            let victimHold = UUID()
            #expect(try await s.bank.hold(s.theirs, s.theirOther, 300_000, id: victimHold).outcome == .ok)
            for resolution in [TransferRequest.Action.postPending(pendingID: victimHold, amount: nil), .voidPending(pendingID: victimHold)] {
                let results = try await s.batch([
                    TransferRequest(id: victimHold, action: .hold(debit: s.mine, credit: s.myOther, amount: 1, currency: "CNY", timeoutSeconds: nil)),
                    TransferRequest(id: UUID(), action: resolution),
                ])
                #expect(results[0].outcome == .existsWithDifferentFields)
                #expect(results[1].outcome == .pendingTransferNotFound, "\(results)")
            }
            #expect(try await s.bank.balances(s.theirs) == Balances(debitsPending: 300_000))
            try await s.bank.expectSound()
        }
    }

    @Test func aHoldMadeEarlierInTheSameBatchIsTheOwnersToPost() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            #expect(try await s.bank.post(s.theirs, s.mine, 100).outcome == .ok)
            let hold = UUID()
            let results = try await s.batch([
                TransferRequest(id: hold, action: .hold(debit: s.mine, credit: s.myOther, amount: 60, currency: "CNY", timeoutSeconds: nil)),
                TransferRequest(id: UUID(), action: .postPending(pendingID: hold, amount: 40)),
            ], atomic: true)
            #expect(results.map(\.outcome) == [.ok, .ok])
            #expect(try await s.bank.balances(s.myOther) == Balances(creditsPosted: 40))
            try await s.bank.expectSound()
        }
    }

    @Test("a principal can neither use a reserved code nor resolve a hold that carries one")
    func reservedCodes() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let s = try await Setup(pool)
            #expect(try await s.bank.post(s.theirs, s.mine, 100).outcome == .ok)
            let forged = try await s.batch([TransferRequest(id: UUID(), action: .post(debit: s.mine, credit: s.myOther, amount: 1, currency: "CNY"), code: "deposit")])
            #expect(forged[0].outcome == .codeReserved && forged[0].detail == "code")
            // A hold on the principal's own account, made by the ledger's operator with a reserved code (a deal's escrow).
            let escrowHold = UUID()
            let made = try await s.bank.ledger.createTransfer(TransferRequest(
                id: escrowHold, action: .hold(debit: s.mine, credit: s.theirs, amount: 50, currency: "CNY", timeoutSeconds: nil), code: "escrow_fund"))
            #expect(made.outcome == .ok)
            for resolution in [TransferRequest.Action.postPending(pendingID: escrowHold, amount: 1), .voidPending(pendingID: escrowHold)] {
                let results = try await s.batch([TransferRequest(id: UUID(), action: resolution)])
                #expect(results[0].outcome == .codeReserved && results[0].detail == "pending_id", "\(results)")
            }
            #expect(try await s.bank.balances(s.mine) == Balances(creditsPosted: 100, debitsPending: 50))
            // Without a principal (the operator), the same hold moves.
            #expect(try await s.bank.void(escrowHold).outcome == .ok)
            try await s.bank.expectSound()
        }
    }
}
