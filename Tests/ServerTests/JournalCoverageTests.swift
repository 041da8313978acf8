import Foundation
import HTTPTypes
import Postgres
import TechBank
import Testing

/// "Nothing that changes state escapes the journal": every state-changing operation (POST, PUT,
/// PATCH, DELETE) the OpenAPI document lists is performed once, successfully, through HTTP, and
/// must append to `ledger.journal` an entry about the object it changes, carrying the calling
/// organization, its key and the request's `Request-Id`; every entry the request appended must
/// carry them. The table below says how to perform each operation; an operation the document
/// lists and the table lacks fails (so a new route cannot escape), and so does one the table
/// lists and the document lacks.
@Suite("Journal: every state-changing operation is journaled")
struct JournalCoverageTests {
    static let stateChangingMethods: Set<String> = ["POST", "PUT", "PATCH", "DELETE"]

    /// `"METHOD /path"` of every state-changing operation of `document`, sorted.
    static func stateChanging(_ document: [String: Any]) throws -> [String] {
        try OpenAPITests.operations(document).keys.filter { stateChangingMethods.contains(String($0.prefix { $0 != " " })) }.sorted()
    }

    /// The state-changing operations of `Sources/Server/openapi.json` (which `OpenAPITests`
    /// proves is byte for byte what `GET /openapi.json` serves).
    static func documentedOperations() throws -> [String] {
        try stateChanging(OpenAPITests.document())
    }

    // MARK: The table

    /// The object a journal entry must be about.
    enum Subject: Sendable {
        /// This id.
        case id(String)
        /// The `id` of the response body (an object the request creates).
        case responseID
    }

    /// The request one case performs, as whom, and what it must answer and journal.
    struct Call {
        let caller: Org
        let uri: String
        var json: [String: Any]? = nil
        var headers: HTTPFields = [:]
        let status: HTTPResponse.Status
        let subject: Subject
        /// Further checks that the answer is a success (a batch answers 200 whatever its transfers did).
        var check: @Sendable (APIResponse) -> Void = { _ in }
    }

    /// The app under test and its operator (the operator's own key).
    struct World: Sendable {
        let api: API
        let bank: Org
    }

    /// Sets up what an operation needs (with other requests, which may journal too) and says what
    /// to send; the test sends it.
    typealias Case = @Sendable (World) async throws -> Call

    /// Every state-changing operation, as `"METHOD /path template"` of the OpenAPI document.
    static let table: [(operation: String, run: Case)] = [
        // MARK: Organizations and keys
        ("POST /v1/organizations", { w in
            Call(caller: w.bank, uri: "/v1/organizations", json: ["name": "Journal Coverage Ltd", "kind": "enterprise", "country": "CN"],
                 status: .created, subject: .responseID)
        }),
        ("PATCH /v1/organizations/{id}", { w in
            let created = try await w.api.call(.post, "/v1/organizations", json: ["name": "Before Rename Ltd", "kind": "enterprise", "country": "CN"])
            try #require(created.status == .created, "\(created)")
            let id = try #require(created.json["id"].string)
            let etag = try #require(created.headers[.eTag], "\(created)")
            return Call(caller: w.bank, uri: "/v1/organizations/\(id)", json: ["name": "After Rename Ltd"], headers: [.ifMatch: etag],
                        status: .ok, subject: .id(id))
        }),
        ("POST /v1/organizations/{id}/api-keys", { w in
            let org = try await w.api.createOrganization("Key Holder Ltd", kind: "enterprise")
            return Call(caller: w.bank, uri: "/v1/organizations/\(org.id)/api-keys", json: ["label": "second key"], status: .created, subject: .responseID)
        }),
        ("DELETE /v1/organizations/{id}/api-keys/{key_id}", { w in
            let org = try await w.api.createOrganization("Key Loser Ltd", kind: "enterprise")
            return Call(caller: w.bank, uri: "/v1/organizations/\(org.id)/api-keys/\(org.keyID)", status: .noContent, subject: .id(org.keyID))
        }),

        // MARK: Ledger
        ("POST /v1/accounts", { w in
            let org = try await w.api.createOrganization("Account Opener Ltd", kind: "enterprise")
            let id = newID()
            return Call(caller: org, uri: "/v1/accounts", json: ["id": id, "owner_id": org.id, "currency": "CNY"], status: .created, subject: .id(id))
        }),
        ("POST /v1/transfers", { w in
            let org = try await w.api.createOrganization("Transferring Ltd", kind: "enterprise")
            let debit = try await w.api.createAccount(for: org, funded: 1_000)
            let credit = try await w.api.createAccount(for: org)
            let id = newID()
            return Call(caller: org, uri: "/v1/transfers", json: API.transferBody(debit, credit, 1_000, id: id), status: .created, subject: .id(id))
        }),
        ("POST /v1/transfers/batch", { w in
            let org = try await w.api.createOrganization("Batching Ltd", kind: "enterprise")
            let debit = try await w.api.createAccount(for: org, funded: 3_000)
            let credit = try await w.api.createAccount(for: org)
            let (first, second) = (newID(), newID())
            return Call(caller: org, uri: "/v1/transfers/batch",
                        json: ["atomic": true, "transfers": [API.transferBody(debit, credit, 1_000, id: first), API.transferBody(debit, credit, 2_000, id: second)]],
                        status: .ok, subject: .id(first),
                        check: { response in
                            #expect(response.json["results"].array.map { $0["outcome"].string } == ["ok", "ok"], "\(response)")
                        })
        }),

        // MARK: Technologies
        ("POST /v1/technologies", { w in
            let lab = try await w.api.createOrganization("Registering Lab", kind: "institute")
            return Call(caller: lab, uri: "/v1/technologies", json: technologyBody(), status: .created, subject: .responseID)
        }),
        ("PATCH /v1/technologies/{id}", { w in
            let lab = try await w.api.createOrganization("Updating Lab", kind: "institute")
            let id = try await w.api.registerTechnologyID(as: lab)
            let current = try await w.api.technology(id, key: lab.key)
            let etag = try #require(current.headers[.eTag], "\(current)")
            return Call(caller: lab, uri: "/v1/technologies/\(id)", json: ["title": "A better title"], headers: [.ifMatch: etag], status: .ok, subject: .id(id))
        }),
        ("POST /v1/technologies/{id}/custody", { w in
            let lab = try await w.api.createOrganization("Custody Lab", kind: "institute")
            let id = try await w.api.registerTechnologyID(as: lab)
            return Call(caller: lab, uri: "/v1/technologies/\(id)/custody", status: .ok, subject: .id(id))
        }),
        ("POST /v1/technologies/{id}/listing", { w in
            let lab = try await w.api.createOrganization("Listing Lab", kind: "institute")
            let id = try await w.api.registerTechnologyID(as: lab)
            try await w.api.moveAll(id, ["custody"], key: lab.key)
            return Call(caller: lab, uri: "/v1/technologies/\(id)/listing", status: .ok, subject: .id(id))
        }),
        ("POST /v1/technologies/{id}/withdraw", { w in
            let lab = try await w.api.createOrganization("Withdrawing Lab", kind: "institute")
            let id = try await w.api.registerTechnologyID(as: lab)
            return Call(caller: lab, uri: "/v1/technologies/\(id)/withdraw", status: .ok, subject: .id(id))
        }),
        ("POST /v1/technologies/{id}/verifications", { w in
            let owner = try await w.api.createOrganization("Verified Lab", kind: "institute")
            let verifier = try await w.api.createOrganization("Testing Lab", kind: "institute")
            let id = try await w.api.listedTechnologyID(as: owner, "Verified wafer inspection")
            return Call(caller: verifier, uri: "/v1/technologies/\(id)/verifications",
                        json: ["claim": "Detects 50 nm defects", "method": "Blind test on 1,000 wafers", "result": "confirmed", "trl_evidenced": 6],
                        status: .created, subject: .id(id))
        }),

        // MARK: Demands
        ("POST /v1/demands", { w in
            let buyer = try await w.api.createOrganization("Demanding Ltd", kind: "enterprise")
            return Call(caller: buyer, uri: "/v1/demands", json: demandBody(), status: .created, subject: .responseID)
        }),
        ("PATCH /v1/demands/{id}", { w in
            let buyer = try await w.api.createOrganization("Updating Ltd", kind: "enterprise")
            let id = try await w.api.postDemandID(as: buyer)
            let current = try await w.api.demand(id, key: buyer.key)
            let etag = try #require(current.headers[.eTag], "\(current)")
            return Call(caller: buyer, uri: "/v1/demands/\(id)", json: ["title": "A sharper demand"], headers: [.ifMatch: etag], status: .ok, subject: .id(id))
        }),
        ("POST /v1/demands/{id}/close", { w in
            let buyer = try await w.api.createOrganization("Closing Ltd", kind: "enterprise")
            let id = try await w.api.postDemandID(as: buyer)
            return Call(caller: buyer, uri: "/v1/demands/\(id)/close", status: .ok, subject: .id(id))
        }),

        // MARK: Matches
        ("POST /v1/matches", { w in
            let m = try await w.api.market()
            return Call(caller: m.broker, uri: "/v1/matches", json: ["technology_id": m.technologyID, "demand_id": m.demandID], status: .created,
                        subject: .responseID)
        }),
        ("POST /v1/matches/{id}/accept", { w in
            let m = try await w.api.market()
            let id = try await w.api.proposeMatchID(as: m.broker, technologyID: m.technologyID, demandID: m.demandID)
            return Call(caller: m.seller, uri: "/v1/matches/\(id)/accept", status: .ok, subject: .id(id))
        }),
        ("POST /v1/matches/{id}/decline", { w in
            let m = try await w.api.market()
            let id = try await w.api.proposeMatchID(as: m.broker, technologyID: m.technologyID, demandID: m.demandID)
            return Call(caller: m.buyer, uri: "/v1/matches/\(id)/decline", status: .ok, subject: .id(id))
        }),

        // MARK: Deals
        ("POST /v1/deals", { w in
            let f = try await w.api.dealFixture()
            return Call(caller: f.seller, uri: "/v1/deals", json: dealBody(technologyID: f.technologyID, buyerID: f.buyer.id), status: .created,
                        subject: .responseID)
        }),
        ("PATCH /v1/deals/{id}", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.sellerDealID(f)
            let current = try await w.api.deal(id, key: f.seller.key)
            let etag = try #require(current.headers[.eTag], "\(current)")
            return Call(caller: f.seller, uri: "/v1/deals/\(id)", json: ["upfront": 1_500_000], headers: [.ifMatch: etag], status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/propose", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.sellerDealID(f)
            return Call(caller: f.seller, uri: "/v1/deals/\(id)/propose", status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/approvals", { w in
            let f = try await w.api.dealFixture()
            // An assignment always needs the committee.
            let id = try await w.api.sellerDealID(f, dealBody(kind: "assignment", upfront: 10_000, milestones: [], contractCategory: "transfer"))
            let proposed = try await w.api.proposeDeal(id, f)
            try #require(proposed["status"].string == "approval_required", "\(proposed)")
            return Call(caller: f.committee, uri: "/v1/deals/\(id)/approvals", json: ["decision": "approve", "reason": "Within policy."], status: .ok,
                        subject: .id(id))
        }),
        ("POST /v1/deals/{id}/sign", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.sellerDealID(f)
            try await w.api.proposeDeal(id, f)
            return Call(caller: f.seller, uri: "/v1/deals/\(id)/sign", status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/escrow", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.signedDealID(f)
            let total = try #require(try await w.api.dealJSON(id)["total_amount"].int)
            try await w.api.depositOK(f.buyer, Int(total))
            return Call(caller: f.buyer, uri: "/v1/deals/\(id)/escrow", status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/cancel", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.sellerDealID(f)
            return Call(caller: f.seller, uri: "/v1/deals/\(id)/cancel", status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/milestones/{number}/release", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.signedDealID(f)
            try await w.api.fundDeal(id, f)
            return Call(caller: f.buyer, uri: "/v1/deals/\(id)/milestones/1/release", status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/milestones/{number}/dispute", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.signedDealID(f)
            try await w.api.fundDeal(id, f)
            return Call(caller: f.buyer, uri: "/v1/deals/\(id)/milestones/1/dispute", json: ["reason": "The prototype fails the acceptance test."],
                        status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/milestones/{number}/resolve", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.signedDealID(f)
            try await w.api.fundDeal(id, f)
            try await w.api.dealActionOK(id, "milestones/1/dispute", key: f.buyer.key, json: ["reason": "The prototype fails the acceptance test."])
            return Call(caller: f.committee, uri: "/v1/deals/\(id)/milestones/1/resolve",
                        json: ["decision": "refund", "reason": "The acceptance test failed twice."], status: .ok, subject: .id(id))
        }),
        ("POST /v1/deals/{id}/royalty-reports", { w in
            let f = try await w.api.dealFixture()
            let id = try await w.api.signedDealID(f, RoyaltyTests.royaltyTerms())
            try await w.api.fundDeal(id, f)
            try await w.api.depositOK(f.buyer, 1_000_000)
            return Call(caller: f.buyer, uri: "/v1/deals/\(id)/royalty-reports",
                        json: ["period": ["from": "2024-01-01", "to": "2024-03-31"], "net_sales": 1_000_000, "currency": "CNY"], status: .created,
                        subject: .id(id))
        }),

        // MARK: Webhooks
        ("POST /v1/webhooks", { w in
            let broker = try await w.api.createOrganization("Subscribing Broker", kind: "broker")
            return Call(caller: broker, uri: "/v1/webhooks", json: ["url": "https://crm.example.com/hooks", "event_types": ["deal_signed"]],
                        status: .created, subject: .responseID)
        }),
        ("PATCH /v1/webhooks/{id}", { w in
            let (broker, id) = try await webhook(w, "Repointing Broker")
            return Call(caller: broker, uri: "/v1/webhooks/\(id)", json: ["enabled": false], headers: [.ifMatch: "\"v1\""], status: .ok, subject: .id(id))
        }),
        ("DELETE /v1/webhooks/{id}", { w in
            let (broker, id) = try await webhook(w, "Unsubscribing Broker")
            return Call(caller: broker, uri: "/v1/webhooks/\(id)", status: .noContent, subject: .id(id))
        }),
        ("POST /v1/webhooks/{id}/rotate-secret", { w in
            let (broker, id) = try await webhook(w, "Rotating Broker")
            return Call(caller: broker, uri: "/v1/webhooks/\(id)/rotate-secret", status: .ok, subject: .id(id))
        }),
        ("POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry", { w in
            let (broker, id) = try await webhook(w, "Retrying Broker")
            let delivery = newID()
            try await w.api.pool.withConnection { connection in
                try await connection.query(
                    "INSERT INTO techbank.webhook_deliveries (id, webhook_id, event_seq, event_type, status, attempts) VALUES ($1, $2, 0, 'transfer', 'failed', 8)",
                    [UUID(uuidString: delivery)!, UUID(uuidString: id)!])
            }
            return Call(caller: broker, uri: "/v1/webhooks/\(id)/deliveries/\(delivery)/retry", status: .ok, subject: .id(id))
        }),

        // MARK: Money
        ("POST /v1/deposits", { w in
            let org = try await w.api.createOrganization("Depositing Ltd", kind: "enterprise")
            return Call(caller: w.bank, uri: "/v1/deposits",
                        json: ["organization_id": org.id, "amount": 500_000, "currency": "CNY", "external_ref": "BANK-\(newID())"], status: .created,
                        subject: .id(org.id))
        }),
        ("POST /v1/withdrawals", { w in
            let org = try await w.api.createOrganization("Withdrawing Ltd", kind: "enterprise")
            try await w.api.depositOK(org, 500_000)
            return Call(caller: w.bank, uri: "/v1/withdrawals",
                        json: ["organization_id": org.id, "amount": 200_000, "currency": "CNY", "external_ref": "BANK-\(newID())"], status: .created,
                        subject: .id(org.id))
        }),
    ]

    // MARK: Helpers

    /// A broker with a webhook of its own: the broker and the webhook's id.
    static func webhook(_ w: World, _ name: String) async throws -> (Org, String) {
        let broker = try await w.api.createOrganization(name, kind: "broker")
        let created = try await w.api.call(.post, "/v1/webhooks", key: broker.key, json: ["url": "https://crm.example.com/hooks", "event_types": ["*"]])
        try #require(created.status == .created, "\(created)")
        return (broker, try #require(created.json["id"].string))
    }

    /// Whether `uri` (without its query) is an instance of the path `template`.
    static func path(_ uri: String, matches template: String) -> Bool {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        let expected = template.split(separator: "/", omittingEmptySubsequences: false)
        return segments.count == expected.count && zip(segments, expected).allSatisfy { segment, part in
            part.hasPrefix("{") && part.hasSuffix("}") ? !segment.isEmpty : segment == part
        }
    }

    /// The operator as an `Org`: its id and its one key.
    static func bank(_ api: API) async throws -> Org {
        let id = try await api.operatorID()
        let keys = try await api.call(.get, "/v1/organizations/\(id)/api-keys")
        try #require(keys.status == .ok, "\(keys)")
        try #require(keys.json["data"].array.count == 1, "the operator should have exactly one key: \(keys)")
        return Org(id: id, key: operatorKey, keyID: try #require(keys.json["data"][0]["id"].string, "\(keys)"))
    }

    static func journalCount(_ api: API) async throws -> Int64 {
        try await api.pool.withConnection { connection in
            try await connection.query("SELECT count(*)::bigint FROM ledger.journal")
        }[0].decode(Int64.self, at: 0)
    }

    /// One journal entry, with its columns as lower-case text.
    struct Entry: CustomStringConvertible {
        let event: String
        let subject: String?
        let actor: String?
        let key: String?
        var description: String { "\(event) subject \(subject ?? "-") actor \(actor ?? "-") key \(key ?? "-")" }
    }

    /// The journal entries written for request `requestID`, oldest first.
    static func entries(_ api: API, requestID: String) async throws -> [Entry] {
        let rows = try await api.pool.withConnection { connection in
            try await connection.query(
                "SELECT event_type, subject_id::text, actor_id::text, key_id::text FROM ledger.journal WHERE request_id = $1 ORDER BY created_at, shard, seq",
                [requestID])
        }
        return try rows.map {
            Entry(event: try $0.decode(String.self, at: 0), subject: try $0.decode(String?.self, at: 1), actor: try $0.decode(String?.self, at: 2),
                  key: try $0.decode(String?.self, at: 3))
        }
    }

    // MARK: Tests

    @Test func theTableCoversExactlyTheStateChangingOperationsTheServerDocuments() async throws {
        let operations = Self.table.map(\.operation)
        #expect(Set(operations).count == operations.count, "the table lists an operation twice: \(operations.sorted())")
        try await withAPI { api in
            let served = try await api.call(.get, "/openapi.json", key: nil)
            try #require(served.status == .ok, "\(served)")
            let document = try #require(try JSONSerialization.jsonObject(with: served.body) as? [String: Any], "GET /openapi.json is not a JSON object")
            let documented = Set(try Self.stateChanging(document))
            #expect(documented.count >= 32, "suspiciously few state-changing operations: \(documented.sorted())")
            let uncovered = documented.subtracting(operations).sorted()
            let undocumented = Set(operations).subtracting(documented).sorted()
            #expect(uncovered.isEmpty, "state-changing operations of the OpenAPI document that JournalCoverageTests.table does not cover: \(uncovered)")
            #expect(undocumented.isEmpty, "JournalCoverageTests.table lists operations the OpenAPI document lacks: \(undocumented)")
        }
    }

    @Test(arguments: try documentedOperations())
    func everyStateChangingOperationJournalsItsSubjectActorKeyAndRequest(_ operation: String) async throws {
        guard let run = Self.table.first(where: { $0.operation == operation })?.run else {
            Issue.record("\(operation) changes state but JournalCoverageTests.table does not say how to perform it; add it")
            return
        }
        let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
        let method = try #require(HTTPRequest.Method(parts[0]), "\(operation)")
        let template = parts[1]
        try await withAPI { api in
            let world = World(api: api, bank: try await Self.bank(api))
            let call = try await run(world)
            #expect(Self.path(call.uri, matches: template), "the case for \(operation) requests \(call.uri)")

            let requestID = "journal-coverage-\(newID())"
            var headers = call.headers
            headers[.tbRequestID] = requestID
            let before = try await Self.journalCount(api)
            let response = try await api.call(method, call.uri, key: call.caller.key, json: call.json, headers: headers)
            let after = try await Self.journalCount(api)
            try #require(response.status == call.status, "\(operation) must succeed: \(response)")
            call.check(response)
            #expect(response.requestID == requestID, "\(response)")

            let subject: String
            switch call.subject {
            case .id(let id): subject = id
            case .responseID: subject = try #require(response.json["id"].string, "\(response)")
            }
            let written = try await Self.entries(api, requestID: requestID)
            #expect(after > before, "\(operation) changed state but the journal did not grow (\(before) entries before, \(after) after)")
            #expect(after - before == Int64(written.count),
                    "\(operation) appended \(after - before) entries, but \(written.count) carry its Request-Id: \(written)")
            #expect(written.contains { $0.subject == subject && $0.actor == call.caller.id && $0.key == call.caller.keyID },
                    "\(operation): no journal entry about \(subject) by \(call.caller.id) with key \(call.caller.keyID) for \(requestID); written: \(written)")
            for entry in written {
                #expect(JournalEventTypes.all.contains(entry.event),
                        "\(operation) journals '\(entry.event)', which webhooks cannot subscribe to: add it to JournalEventTypes and the document's WebhookEventType")
                #expect(entry.actor == call.caller.id && entry.key == call.caller.keyID,
                        "\(operation): an entry of the request names another actor or key: \(entry) (caller \(call.caller.id), key \(call.caller.keyID))")
            }
        }
    }
}
