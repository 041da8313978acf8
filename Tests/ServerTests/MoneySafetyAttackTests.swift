import Foundation
import HTTPTypes
import Ledger
import Postgres
@testable import TechBank
import Testing

/// Each test plays a hostile tenant holding nothing but an ordinary API key, against the attacks
/// that once gave up the bank's money (see the README's "Money model").
@Suite("Money safety: a hostile tenant")
struct MoneySafetyAttackTests {
    /// The operator's organization id (the bank).
    static func bankID(_ api: API) async throws -> UUID {
        try await api.pool.withConnection { try await $0.query("SELECT id FROM techbank.organizations WHERE kind = 'operator'") }[0].decode(UUID.self, at: 0)
    }

    static func owner(of account: UUID, _ api: API) async throws -> UUID? {
        try await api.pool.withConnection { try await $0.query("SELECT owner_id FROM ledger.accounts WHERE id = $1", [account]) }.first?.decode(UUID.self, at: 0)
    }

    @Test("a tenant cannot claim the bank's or another tenant's account by opening its derived id first")
    func claimingDerivedAccountIDs() async throws {
        try await withAPI { api in
            let attacker = try await api.createOrganization("Squatter Ltd", kind: "enterprise")
            let victim = try await api.createOrganization("Victim Co", kind: "enterprise")
            let bank = try await Self.bankID(api)
            let targets = [
                ("USD", AccountRole.settlement(bank: bank).account("USD").id), ("EUR", AccountRole.escrow(bank: bank).account("EUR").id),
                ("CNY", AccountRole.operating(try #require(UUID(uuidString: victim.id))).account("CNY").id),
            ]
            for (currency, id) in targets {
                let response = try await api.call(.post, "/v1/accounts", key: attacker.key, json: [
                    "id": id.uuidString.lowercased(), "owner_id": attacker.id, "currency": currency,
                ])
                expectInvalid(response, "id")
                #expect(try await Self.owner(of: id, api) == nil)
            }
            // The bank's operations then open those accounts for their rightful owners.
            try await api.depositOK(victim, 5_000, currency: "USD")
            try await api.depositOK(victim, 7_000)
            #expect(try await Self.owner(of: targets[0].1, api) == bank)
            #expect(try await Self.owner(of: targets[2].1, api) == UUID(uuidString: victim.id))
            try await api.expectLedgerInvariants()
        }
    }

    @Test("an account squatted under a derived id is never adopted: the deposit fails instead of paying the squatter")
    func aSquattedAccountIsNeverAdopted() async throws {
        try await withAPI { api in
            let attacker = try await api.createOrganization("Squatter Ltd", kind: "enterprise")
            let victim = try await api.createOrganization("Victim Co", kind: "enterprise")
            let operating = AccountRole.operating(try #require(UUID(uuidString: victim.id))).account("CNY").id
            // As if the squat had got past the API: the row exists with the attacker as owner.
            try await api.pool.withConnection { connection in
                try await connection.query(
                    "INSERT INTO ledger.accounts (id, currency, owner_id, code, debits_must_not_exceed_credits) VALUES ($1, 'CNY', $2, 'operating', true)",
                    [operating, try #require(UUID(uuidString: attacker.id))])
            }
            let deposit = try await api.deposit(victim, 9_000)
            expectProblem(deposit, .conflict, "exists_with_different_fields")
            #expect(try await api.balances(operating.uuidString.lowercased()) == [0, 0, 0, 0])
            try await api.expectLedgerInvariants()
        }
    }

    @Test("a tenant cannot open an account that goes below zero, so it cannot mint money and have it withdrawn")
    func mintingMoneyFromNothing() async throws {
        try await withAPI { api in
            let attacker = try await api.createOrganization("Mint Ltd", kind: "enterprise")
            func open(_ extra: [String: Any]) async throws -> APIResponse {
                try await api.call(.post, "/v1/accounts", key: attacker.key, json: ["owner_id": attacker.id, "currency": "CNY"].merging(extra) { $1 })
            }
            expectInvalid(try await open(["debits_must_not_exceed_credits": false]), "debits_must_not_exceed_credits")
            expectInvalid(try await open(["credits_must_not_exceed_debits": true]), "credits_must_not_exceed_debits")
            for code in ["settlement", "escrow", "inventor"] { expectInvalid(try await open(["code": code]), "code") }
            // Opened without flags, an account keeps debits within credits.
            let empty = try await api.createAccount(for: attacker)
            let operating = try await api.operatingAccount(of: attacker, holding: 1)
            let minted = try await api.transfer(empty, operating, (1 << 53) - 1, key: attacker.key)
            expectProblem(minted, .unprocessableContent, "exceeds_credits")
            let withdrawal = try await api.call(.post, "/v1/withdrawals", json: [
                "organization_id": attacker.id, "amount": 2, "currency": "CNY", "external_ref": "OUT-\(newID())",
            ])
            expectProblem(withdrawal, .unprocessableContent, "exceeds_credits")
            // The database is the last line: a tenant's account that may go negative cannot even be inserted.
            for code in ["operating", "settlement"] {
                await #expect(throws: PostgresError.self) {
                    try await api.pool.withConnection { connection in
                        try await connection.query("INSERT INTO ledger.accounts (id, currency, owner_id, code) VALUES ($1, 'CNY', $2, $3)",
                                                   [UUID(), try #require(UUID(uuidString: attacker.id)), code])
                    }
                }
            }
            try await api.expectLedgerInvariants()
        }
    }

    /// A single transfer goes to the ledger before any lookup (`Money.transfer`); what the ledger
    /// refuses or reports as a replay is then looked up, so the answer is the one the lookups give.
    @Test("a single transfer cannot move, replay or probe another tenant's money: 404 as for a missing account, nothing moves")
    func singleTransfersOnAnotherTenantsAccounts() async throws {
        try await withAPI { api in
            let victim = try await api.createOrganization("Victim Co", kind: "enterprise")
            let attacker = try await api.createOrganization("Replayer Ltd", kind: "enterprise")
            let victimFunds = try await api.createAccount(for: victim, funded: 50_000)
            let victimOther = try await api.createAccount(for: victim)
            let mine = try await api.createAccount(for: attacker, funded: 10)
            let paid = API.transferBody(victimFunds, victimOther, 20_000)
            try #require(try await api.call(.post, "/v1/transfers", key: victim.key, json: paid).status == .created)
            // The victim's transfer, replayed word for word: the ledger reports `exists`, the lookup 404s.
            let replay = try await api.call(.post, "/v1/transfers", key: attacker.key, json: paid)
            expectProblem(replay, .notFound, "not_found")
            #expect(!replay.text.contains(victimFunds), "the replay reveals nothing of the victim's transfer: \(replay)")
            // Fresh transfers out of the victim's account, to the victim or to the attacker.
            for credit in [victimOther, mine] {
                let theft = try await api.call(.post, "/v1/transfers", key: attacker.key, json: API.transferBody(victimFunds, credit, 1))
                expectProblem(theft, .notFound, "not_found", fields: ["debit_account_id"])
            }
            #expect(try await api.balances(victimFunds) == [20_000, 50_000, 0, 0])
            #expect(try await api.balances(victimOther) == [0, 20_000, 0, 0])
            try await api.expectLedgerInvariants()
        }
    }

    @Test("an outsider cannot post or void another enterprise's hold by redeclaring it in a batch")
    func postingSomeoneElsesHoldInABatch() async throws {
        try await withAPI { api in
            let victim = try await api.createOrganization("Victim Co", kind: "enterprise")
            let attacker = try await api.createOrganization("Outsider Ltd", kind: "enterprise")
            let victimFunds = try await api.createAccount(for: victim, funded: 300_000)
            let victimOther = try await api.createAccount(for: victim)
            let hold = newID()
            var body = API.transferBody(victimFunds, victimOther, 300_000, id: hold)
            body["pending"] = true
            try #require(try await api.call(.post, "/v1/transfers", key: victim.key, json: body).status == .created)
            let mine = try await api.createAccount(for: attacker, funded: 10)
            let myOther = try await api.createAccount(for: attacker)
            var decoy = API.transferBody(mine, myOther, 1, id: hold)
            decoy["pending"] = true
            for resolution in ["post_pending_id", "void_pending_id"] {
                let response = try await api.call(.post, "/v1/transfers/batch", key: attacker.key, json: [
                    "atomic": false, "transfers": [decoy, ["id": newID(), resolution: hold]],
                ])
                if response.status == .ok {
                    #expect(response.json["results"][1]["outcome"].string != "ok", "\(response)")
                } else {
                    expectProblem(response, .notFound, "not_found")
                }
            }
            #expect(try await api.balances(victimFunds) == [0, 300_000, 300_000, 0])
            #expect(try await api.balances(victimOther) == [0, 0, 0, 300_000])
            try await api.expectLedgerInvariants()
        }
    }

    @Test("a buyer cannot void or post a deal's escrow hold through /v1/transfers; the deal still settles")
    func unwindingEscrowOutsideTheDeal() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.signedDealID(f)
            try await api.fundDeal(id, f)
            let hold = Deals.holdID(try #require(UUID(uuidString: id)), "m1").uuidString.lowercased()
            expectProblem(try await api.call(.post, "/v1/transfers", key: f.buyer.key, json: ["id": newID(), "void_pending_id": hold]),
                          .forbidden, "forbidden", fields: ["void_pending_id"])
            expectProblem(try await api.call(.post, "/v1/transfers", key: f.buyer.key, json: ["id": newID(), "post_pending_id": hold, "amount": 1]),
                          .forbidden, "forbidden", fields: ["post_pending_id"])
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: f.buyer.key, json: [
                "atomic": false, "transfers": [["id": newID(), "void_pending_id": hold]],
            ]), .forbidden, "forbidden", fields: ["transfers[0].void_pending_id"])
            let released = try await api.releaseOK(id, milestone: 1, key: f.buyer.key)
            #expect(released["milestones"][0]["status"].string == "released", "\(released)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test("a tenant cannot squat the ids of a deposit or of a committee's refund")
    func squattingDerivedTransferIDs() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.signedDealID(f)
            try await api.fundDeal(id, f)
            let dealID = try #require(UUID(uuidString: id))
            let mine = try await api.createAccount(for: f.outsider, funded: 10)
            let myOther = try await api.createAccount(for: f.outsider)
            let reference = "BANK-\(newID())"
            for squatted in [derivedID("payment", reference), Deals.transferID(dealID, "m1.refund", "void")] {
                let squat = try await api.transfer(mine, myOther, 1, key: f.outsider.key, id: squatted.uuidString.lowercased())
                expectInvalid(squat, "id")
            }
            let deposit = try await api.deposit(f.outsider, 500, externalRef: reference)
            #expect(deposit.status == .created, "\(deposit)")
            try await api.dealActionOK(id, "milestones/1/dispute", key: f.buyer.key, json: ["reason": "Prototype failed acceptance."])
            let refunded = try await api.dealActionOK(id, "milestones/1/resolve", key: f.committee.key,
                                                      json: ["decision": "refund", "reason": "The prototype failed."])
            #expect(refunded["milestones"][0]["status"].string == "refunded", "\(refunded)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test("a tenant cannot put the bank's codes on its own transfers to forge the committee's figures")
    func forgingTheCommitteesFigures() async throws {
        try await withAPI { api in
            let attacker = try await api.createOrganization("Forger Ltd", kind: "institute")
            let mine = try await api.createAccount(for: attacker, funded: 1_000)
            let myOther = try await api.createAccount(for: attacker)
            for code in MoneyModel.BankCode.allCases.map(\.rawValue) {
                var body = API.transferBody(mine, myOther, 10)
                body["code"] = code
                expectInvalid(try await api.call(.post, "/v1/transfers", key: attacker.key, json: body), "code")
                expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: attacker.key, json: ["atomic": true, "transfers": [body]]),
                              "transfers[0].code")
            }
            let forged = try await api.pool.withConnection { connection in
                try await connection.query("SELECT count(*)::bigint FROM ledger.transfers WHERE code = ANY($1)",
                                           [MoneyModel.BankCode.allCases.map(\.rawValue)])
            }[0].decode(Int64.self, at: 0)
            #expect(forged == 1, "only the deposit that funded the attacker carries a bank code")
            #expect(try await api.balances(myOther) == [0, 0, 0, 0])
        }
    }

    @Test("a tenant cannot pay into the bank's settlement or escrow account, where its money would belong to no deposit and no deal")
    func payingIntoTheBanksOwnAccounts() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Stray Payer Co", kind: "enterprise")
            let mine = try await api.operatingAccount(of: tenant, holding: 1_000)
            let bank = try await Self.bankID(api)
            let settlement = AccountRole.settlement(bank: bank).account("CNY").id
            let escrow = AccountRole.escrow(bank: bank).account("CNY").id
            // The escrow account exists once a deal is funded; open it as the bank would.
            try await api.pool.withConnection { try await Ledger.openAccount(AccountRole.escrow(bank: bank).account("CNY"), on: $0) }
            for account in [settlement, escrow] {
                let paid = try await api.transfer(mine, account.uuidString.lowercased(), 100, key: tenant.key)
                expectProblem(paid, .unprocessableContent, "code_reserved")
                var hold = API.transferBody(mine, account.uuidString.lowercased(), 100)
                hold["pending"] = true
                let batch = try await api.call(.post, "/v1/transfers/batch", key: tenant.key, json: ["atomic": false, "transfers": [hold]])
                #expect(batch.status == .ok && batch.json["results"][0]["outcome"].string == "code_reserved"
                        && batch.json["results"][0]["detail"].string == "credit_account_id", "\(batch)")
            }
            #expect(try await api.balances(mine) == [0, 1_000, 0, 0])
            #expect(try await api.balances(escrow.uuidString.lowercased()) == [0, 0, 0, 0])
            try await api.expectLedgerInvariants()
        }
    }

    @Test("ids of version 8 are the bank's: no client may choose one")
    func version8IDsAreReserved() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Tongji", kind: "institute")
            let v8 = "01234567-89ab-8def-8123-456789abcdef"
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["id": v8, "owner_id": org.id, "currency": "CNY"]), "id")
            let mine = try await api.createAccount(for: org, funded: 5)
            let other = try await api.createAccount(for: org)
            expectInvalid(try await api.transfer(mine, other, 1, key: org.key, id: v8), "id")
            let reserved = try #require(UUID(uuidString: v8))
            #expect(MoneyModel.isClientID(UUID()) && !MoneyModel.isClientID(reserved))
        }
    }
}
