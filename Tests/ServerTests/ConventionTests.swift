import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Server
import Testing

@Suite("API: conventions")
struct ConventionTests {
    @Test func everyResponseCarriesARequestID() async throws {
        try await withAPI { api in
            let first = try await api.call(.get, "/healthz", key: nil)
            let second = try await api.call(.get, "/healthz", key: nil)
            let generated = try #require(first.requestID)
            #expect(UUID(uuidString: generated) != nil, "generated Request-Id is not a UUID: \(generated)")
            #expect(generated != second.requestID)

            let echoed = try await api.call(.get, "/healthz", key: nil, headers: [.tbRequestID: "client-req-42"])
            #expect(echoed.requestID == "client-req-42")

            // On problems, the header and the body's request_id agree, generated or supplied.
            let unauthorized = try await api.call(.get, "/v1/organizations", key: nil, headers: [.tbRequestID: "trace.abc-123"])
            #expect(unauthorized.requestID == "trace.abc-123")
            expectProblem(unauthorized, .unauthorized, "unauthorized")
            let invalid = try await api.call(.post, "/v1/transfers", raw: "{", headers: [.tbRequestID: "bad-json-1"])
            #expect(invalid.requestID == "bad-json-1" && invalid.json["request_id"].string == "bad-json-1", "\(invalid)")
            let generatedProblem = try await api.call(.get, "/v1/accounts/\(newID())")
            expectProblem(generatedProblem, .notFound, "not_found")

            // Unmatched routes and other methods are problems with a request id too.
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/nothing-here"), (.get, "/nothing"), (.put, "/v1/transfers")] {
                let response = try await api.call(method, uri)
                #expect(response.status.code == 404 || response.status.code == 405, "\(response)")
                #expect(response.json["request_id"].string == response.requestID, "\(response)")
            }

            // A Request-Id that is unsafe to echo or log is replaced by a generated one.
            for unsafe in ["has space", String(repeating: "x", count: 201), "tab\tinside", "ünïcode"] {
                let response = try await api.call(.get, "/healthz", key: nil, headers: HTTPFields([HTTPField(name: .tbRequestID, value: unsafe)]))
                #expect(response.requestID != unsafe && UUID(uuidString: response.requestID ?? "") != nil, "\(unsafe) → \(response.requestID ?? "nil")")
            }

            // Successful writes and reads, not only health checks.
            let org = try await api.call(.post, "/v1/organizations", json: ["name": "Acme", "kind": "broker", "country": "CN"], headers: [.tbRequestID: "create-org"])
            #expect(org.status == .created && org.requestID == "create-org")
            #expect(try await api.call(.get, "/metrics", key: nil).requestID != nil)
            #expect(try await api.call(.get, "/openapi.json", key: nil).requestID != nil)
        }
    }

    @Test func malformedBodiesAre400() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let targets: [(HTTPRequest.Method, String, HTTPFields)] = [
                (.post, "/v1/transfers", [:]), (.post, "/v1/transfers/batch", [:]), (.post, "/v1/accounts", [:]),
                (.post, "/v1/organizations", [:]), (.post, "/v1/organizations/\(org.id)/api-keys", [:]),
                (.patch, "/v1/organizations/\(org.id)", [.ifMatch: "\"v1\""]),
                (.post, "/v1/transfers", [.tbIdempotencyKey: "fresh"]),
            ]
            for (method, uri, headers) in targets {
                for raw in ["{not json", "", "{\"amount\": 1", "[1, 2]", "\"a string\"", "null", "{\"a\":1} trailing", String(repeating: "[", count: 100_000)] {
                    var headers = headers
                    if headers[.tbIdempotencyKey] != nil { headers[.tbIdempotencyKey] = newID() }  // a fresh key per body
                    let response = try await api.call(method, uri, raw: raw, headers: headers)
                    expectProblem(response, .badRequest, "invalid_request", fields: ["body"])
                }
            }
            // Trailing commas are not JSON (RFC 8259) either.
            for raw in [#"{"name":"X","kind":"broker","country":"CN",}"#, #"{"name":"X","kind":"broker","country":"CN","sub_park_id":null,}"#] {
                expectProblem(try await api.call(.post, "/v1/organizations", raw: raw), .badRequest, "invalid_request", fields: ["body"])
            }
            let trailingInArray = #"{"atomic":true,"transfers":[{"id":"\#(newID())"},]}"#
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: org.key, raw: trailingInArray), .badRequest, "invalid_request", fields: ["body"])
        }
    }

    @Test func wrongTypesAre422NamingTheField() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // Funded, so that a request slipping past validation would move money.
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            func transfer(_ change: (inout [String: Any]) -> Void) -> [String: Any] {
                var body = API.transferBody(a, b, 100)
                change(&body)
                return body
            }
            let cases: [(String, [String: Any])] = [
                ("amount", transfer { $0["amount"] = "100" }),
                ("amount", transfer { $0["amount"] = 1.5 }),
                ("amount", transfer { $0["amount"] = true }),
                ("amount", transfer { $0["amount"] = [100] }),
                ("id", transfer { $0["id"] = "not-a-uuid" }),
                ("id", transfer { $0["id"] = 7 }),
                ("debit_account_id", transfer { $0["debit_account_id"] = 42 }),
                ("credit_account_id", transfer { $0["credit_account_id"] = "nope" }),
                ("currency", transfer { $0["currency"] = 156 }),
                ("pending", transfer { $0["pending"] = "yes" }),
                ("timeout_seconds", transfer { $0["pending"] = true; $0["timeout_seconds"] = "60" }),
                ("timeout_seconds", transfer { $0["pending"] = true; $0["timeout_seconds"] = 3_000_000_000 }),
                ("code", transfer { $0["code"] = ["a"] }),
            ]
            for (field, body) in cases {
                expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: body), field)
            }
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": "yes", "transfers": [transfer { _ in }]]), "atomic")
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": "all"]), "transfers")
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": [transfer { $0["amount"] = "1" }]]),
                          "transfers[0].amount")
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "CNY", "debits_must_not_exceed_credits": "true"]),
                          "debits_must_not_exceed_credits")
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": 1, "currency": "CNY"]), "owner_id")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "Bank", "kind": "bank", "country": "CN"]), "kind")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "Op", "kind": "operator", "country": "CN"]), "kind")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": 5, "kind": "broker", "country": "CN"]), "name")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "X", "kind": "broker", "country": "cn"]), "country")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "  ", "kind": "broker", "country": "CN"]), "name")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "X", "kind": "broker", "country": "CN", "sub_park_id": org.id]), "sub_park_id")
            expectInvalid(try await api.call(.post, "/v1/organizations", json: ["name": "X", "kind": "institute", "country": "CN", "sub_park_id": org.id]), "sub_park_id")
            expectInvalid(try await api.call(.post, "/v1/organizations/\(org.id)/api-keys", json: ["label": false]), "label")
            // Format rules the ledger enforces name the request's own field, not an internal one.
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "CNY", "code": "Not A Code"]), "code")
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: [
                "owner_id": org.id, "currency": "CNY", "debits_must_not_exceed_credits": true, "credits_must_not_exceed_debits": true,
            ]), "credits_must_not_exceed_debits")
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "cny"]),
                          .unprocessableContent, "unknown_currency", fields: ["currency"])
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "XQZ"]),
                          .unprocessableContent, "unknown_currency", fields: ["currency"])
            let badCurrency = try await api.call(.post, "/v1/transfers", key: org.key, json: transfer { $0["currency"] = "cny" })
            #expect(badCurrency.status == .unprocessableContent && badCurrency.errorFields == ["currency"], "\(badCurrency)")
            let badCode = try await api.call(.post, "/v1/transfers", key: org.key, json: transfer { $0["code"] = "Not A Code" })
            #expect(badCode.status == .unprocessableContent && badCode.errorFields == ["code"], "\(badCode)")
            // In a batch, the element is named.
            let badBatchCode = try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": [transfer { _ in }, transfer { $0["code"] = "Bad" }]])
            #expect(badBatchCode.status == .unprocessableContent && badBatchCode.errorFields == ["transfers[1].code"], "\(badBatchCode)")
            #expect(try await api.balances(a) == [0, 1_000, 0, 0])
        }
    }

    @Test func amountsMustBePositiveIntegersUpTo2To53() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // 2^53 is the most one deposit brings in; the hold's 10 comes on top of it.
            let a = try await api.createAccount(for: org, funded: 1 << 53)
            let operating = try await api.operatingAccount(of: org, holding: 10)
            try #require(try await api.transfer(operating, a, 10, key: org.key).status == .created)
            let b = try await api.createAccount(for: org)
            let hold = try await api.call(.post, "/v1/transfers", key: org.key, json: [
                "id": newID(), "debit_account_id": a, "credit_account_id": b, "amount": 10, "currency": "CNY", "pending": true,
            ])
            let holdID = try #require(hold.json["id"].string)
            for amount in ["0", "-1", "-9223372036854775808", "9007199254740993", "9223372036854775807", "9223372036854775808",
                           "99999999999999999999", "1e30", "1.5", "0.5", "null", "\"5\"", "true"] {
                let body = #"{"id":"\#(newID())","debit_account_id":"\#(a)","credit_account_id":"\#(b)","amount":\#(amount),"currency":"CNY"}"#
                expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, raw: body), "amount")
                let pending = #"{"id":"\#(newID())","debit_account_id":"\#(a)","credit_account_id":"\#(b)","amount":\#(amount),"currency":"CNY","pending":true}"#
                expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, raw: pending), "amount")
                let batch = #"{"atomic":false,"transfers":[{"id":"\#(newID())","debit_account_id":"\#(a)","credit_account_id":"\#(b)","amount":\#(amount),"currency":"CNY"}]}"#
                expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, raw: batch), "transfers[0].amount")
                if amount != "null" {
                    let post = #"{"id":"\#(newID())","post_pending_id":"\#(holdID)","amount":\#(amount)}"#
                    expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, raw: post), "amount")
                }
            }
            // 2^53 itself is the largest amount accepted.
            let largest = try await api.call(.post, "/v1/transfers", key: org.key, raw: #"{"id":"\#(newID())","debit_account_id":"\#(a)","credit_account_id":"\#(b)","amount":9007199254740992,"currency":"CNY"}"#)
            #expect(largest.status == .created && largest.json["amount"].int == 9_007_199_254_740_992, "\(largest)")
            #expect(try await api.balances(a) == [9_007_199_254_740_992, 9_007_199_254_741_002, 10, 0])
        }
    }

    @Test func unknownFieldsAre422() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // Funded, so that a request slipping past validation would move money.
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            var transfer = API.transferBody(a, b, 5)
            transfer["extra"] = 1
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: transfer), .unprocessableContent, "unknown_field", fields: ["extra"])
            var misspelt = API.transferBody(a, b, 5)
            misspelt["timeout_second"] = 60
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: misspelt), .unprocessableContent, "unknown_field", fields: ["timeout_second"])
            let batch: [String: Any] = ["atomic": true, "transfers": [API.transferBody(a, b, 5), transfer]]
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: batch), .unprocessableContent, "unknown_field", fields: ["transfers[1].extra"])
            let first: [String: Any] = ["atomic": true, "transfers": [transfer]]
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: first), .unprocessableContent, "unknown_field", fields: ["transfers[0].extra"])
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": [API.transferBody(a, b, 5)], "dry_run": true]),
                          .unprocessableContent, "unknown_field", fields: ["dry_run"])
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "CNY", "colour": "red"]),
                          .unprocessableContent, "unknown_field", fields: ["colour"])
            expectProblem(try await api.call(.post, "/v1/organizations", json: ["name": "X", "kind": "broker", "country": "CN", "parent": "y"]),
                          .unprocessableContent, "unknown_field", fields: ["parent"])
            expectProblem(try await api.call(.post, "/v1/organizations/\(org.id)/api-keys", json: ["lable": "x"]),
                          .unprocessableContent, "unknown_field", fields: ["lable"])
            expectProblem(try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Y", "kind": "broker"], headers: [.ifMatch: "\"v1\""]),
                          .unprocessableContent, "unknown_field", fields: ["kind"])
            // Two unknown fields are both named.
            transfer["more"] = 2
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: transfer), .unprocessableContent, "unknown_field", fields: ["extra", "more"])
            #expect(try await api.balances(a) == [0, 1_000, 0, 0])
        }
    }

    @Test func missingRequiredFieldsAre422NamingThem() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // Funded, so that a request slipping past validation would move money.
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            for field in ["id", "debit_account_id", "credit_account_id", "amount", "currency"] {
                var body = API.transferBody(a, b, 5)
                body[field] = nil
                expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: body), field)
                expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": [API.transferBody(a, b, 1), body]]),
                              "transfers[1].\(field)")
            }
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true]), "transfers")
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["transfers": [API.transferBody(a, b, 1)]]), "atomic")
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": []]), "transfers")
            for field in ["owner_id", "currency"] {
                var body: [String: Any] = ["owner_id": org.id, "currency": "CNY"]
                body[field] = nil
                expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: body), field)
            }
            for field in ["name", "kind", "country"] {
                var body: [String: Any] = ["name": "X", "kind": "broker", "country": "CN"]
                body[field] = nil
                expectInvalid(try await api.call(.post, "/v1/organizations", json: body), field)
            }
            expectInvalid(try await api.call(.patch, "/v1/organizations/\(org.id)", json: [:], headers: [.ifMatch: "\"v1\""]), "name")
            // Null where a value is required is the same as missing.
            var nullAmount = API.transferBody(a, b, 5)
            nullAmount["amount"] = NSNull()
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: nullAmount), "amount")
            #expect(try await api.balances(a) == [0, 1_000, 0, 0])
        }
    }

    @Test func bodiesOverTheLimitAre413() async throws {
        try await withAPI(maxBodyBytes: 1024) { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org, funded: 100)
            let b = try await api.createAccount(for: org)
            let id = newID()
            var big = API.transferBody(a, b, 5, id: id)
            big["metadata"] = ["note": String(repeating: "x", count: 2048)]
            let bigData = try JSONSerialization.data(withJSONObject: big, options: [.sortedKeys])
            #expect(bigData.count > 2048)
            let raw = String(decoding: bigData, as: UTF8.self)

            for (uri, headers) in [("/v1/transfers", HTTPFields()), ("/v1/transfers", [.tbIdempotencyKey: "big-1"]), ("/v1/transfers/batch", HTTPFields()),
                                   ("/v1/accounts", HTTPFields()), ("/v1/organizations", HTTPFields())] {
                let response = try await api.call(.post, uri, key: org.key, raw: raw, headers: headers)
                expectProblem(response, .contentTooLarge, "body_too_large")
            }
            // Unauthenticated oversized bodies are refused as well (without reading them).
            expectProblem(try await api.call(.post, "/v1/transfers", key: nil, raw: raw), .contentTooLarge, "body_too_large")

            // Without Content-Length (a chunked upload) the limit still holds, with or without an Idempotency-Key.
            let router = buildRouter(configuration: { var c = ServerConfiguration(); c.maxBodyBytes = 1024; c.maxBatchBodyBytes = 1024; return c }(), pool: api.pool)
            let chunks = stride(from: 0, to: bigData.count, by: 256).map { ByteBuffer(bytes: bigData[$0..<min($0 + 256, bigData.count)]) }
            for path in ["/v1/transfers", "/v1/transfers/batch", "/v1/accounts"] {
                let streamed = try await sendStreamed(router: router, method: .post, path: path, key: org.key, chunks: chunks)
                #expect(streamed.headers[.contentLength] == nil || streamed.status != .created)
                expectProblem(streamed, .contentTooLarge, "body_too_large")
            }
            // A small streamed body goes through.
            let small = try JSONSerialization.data(withJSONObject: API.transferBody(a, b, 5), options: [])
            let accepted = try await sendStreamed(router: router, method: .post, path: "/v1/transfers", key: org.key,
                                                  chunks: [ByteBuffer(bytes: small.prefix(20)), ByteBuffer(bytes: small.dropFirst(20))])
            #expect(accepted.status == .created, "\(accepted)")
            // None of the oversized ones moved money; the small one did.
            expectProblem(try await api.call(.get, "/v1/transfers/\(id)", key: org.key), .notFound, "not_found")
            #expect(try await api.balances(a) == [5, 100, 0, 0])
        }
    }

    @Test func pagingParametersAreValidated() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org)
            for base in ["/v1/accounts/\(a)/transfers", "/v1/organizations"] {
                for limit in ["0", "201", "abc", "-1", "1.5", "", "99999999999999999999"] {
                    expectInvalid(try await api.call(.get, "\(base)?limit=\(limit)", key: org.key), "limit")
                }
                for cursor in ["!!!", "Zm9v", "%00", String(repeating: "A", count: 400), "eyJzZXEiOjF9"] {
                    expectInvalid(try await api.call(.get, "\(base)?cursor=\(cursor)", key: org.key), "cursor")
                }
                #expect(try await api.call(.get, "\(base)?limit=1", key: org.key).status == .ok)
                #expect(try await api.call(.get, "\(base)?limit=200", key: org.key).status == .ok)
            }
            // An account cursor is not an organization cursor, and the other way round.
            expectInvalid(try await api.call(.get, "/v1/accounts/\(a)/transfers?cursor=\(newID())", key: org.key), "cursor")
            expectInvalid(try await api.call(.get, "/v1/organizations?kind=bank"), "kind")
            expectInvalid(try await api.call(.get, "/v1/organizations?sub_park_id=nope"), "sub_park_id")
            // Path ids that are not UUIDs name nothing.
            expectProblem(try await api.call(.get, "/v1/accounts/not-a-uuid", key: org.key), .notFound, "not_found")
            expectProblem(try await api.call(.get, "/v1/transfers/123", key: org.key), .notFound, "not_found")
            expectProblem(try await api.call(.get, "/v1/organizations/%27%20OR%201=1", key: org.key), .notFound, "not_found")
        }
    }

    @Test func pagingThroughAnAccountsTransfersCoversEachOnceNewestFirst() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org)
            // b and c are funded (transfers a's listing does not show); a's own funding is the first of its five.
            let b = try await api.createAccount(for: org, funded: 100)
            let c = try await api.createAccount(for: org, funded: 100)
            let operating = try await api.operatingAccount(of: org, holding: 100)
            var created: [String] = []
            for (debit, credit, amount) in [(operating, a, 100), (b, a, 2), (a, c, 3), (c, b, 4), (c, a, 5), (a, b, 6)] {
                let response = try await api.transfer(debit, credit, amount, key: org.key)
                #expect(response.status == .created, "\(response)")
                if debit == a || credit == a { created.append(try #require(response.json["id"].string)) }
            }
            #expect(created.count == 5)

            func walk(limit: Int) async throws -> (ids: [String], pageSizes: [Int]) {
                var ids: [String] = []
                var sizes: [Int] = []
                var cursor: String?
                repeat {
                    let page = try await api.call(.get, "/v1/accounts/\(a)/transfers?limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? ""), key: org.key)
                    try #require(page.status == .ok, "\(page)")
                    #expect(page.json.keys == ["data", "next_cursor"], "\(page)")
                    let data = page.json["data"].array
                    ids += data.compactMap { $0["id"].string }
                    sizes.append(data.count)
                    cursor = page.json["next_cursor"].string
                    if cursor == nil { #expect(page.json["next_cursor"] == .null, "next_cursor must be null on the last page: \(page)") }
                } while cursor != nil && sizes.count < 10
                return (ids, sizes)
            }
            let byTwo = try await walk(limit: 2)
            #expect(byTwo.ids == created.reversed(), "pages must cover every transfer once, newest first")
            #expect(byTwo.pageSizes == [2, 2, 1])
            let byFive = try await walk(limit: 5)
            #expect(byFive.ids == created.reversed() && byFive.pageSizes == [5])
            let byOne = try await walk(limit: 1)
            #expect(byOne.ids == created.reversed() && byOne.pageSizes == [1, 1, 1, 1, 1])
            // An account without transfers: one empty page.
            let empty = try await api.createAccount(for: org)
            let none = try await api.call(.get, "/v1/accounts/\(empty)/transfers", key: org.key)
            #expect(none.json["data"].array.isEmpty && none.json["next_cursor"] == .null, "\(none)")
        }
    }

    @Test func organizationsAreFilteredByKindAndSubPark() async throws {
        try await withAPI { api in
            let north = try await api.createOrganization("North Park", kind: "sub_park")
            let south = try await api.createOrganization("South Park", kind: "sub_park")
            let lab = try await api.createOrganization("North Lab", kind: "institute", subParkID: north.id)
            let factory = try await api.createOrganization("North Factory", kind: "enterprise", subParkID: north.id)
            let southLab = try await api.createOrganization("South Lab", kind: "institute", subParkID: south.id)
            let broker = try await api.createOrganization("Broker", kind: "broker")

            func ids(_ query: String, key: String = operatorKey) async throws -> Set<String> {
                let response = try await api.call(.get, "/v1/organizations\(query)", key: key)
                #expect(response.status == .ok, "\(response)")
                return Set(response.json["data"].array.compactMap { $0["id"].string })
            }
            #expect(try await ids("?kind=institute") == [lab.id, southLab.id])
            #expect(try await ids("?kind=sub_park") == [north.id, south.id])
            #expect(try await ids("?kind=broker") == [broker.id])
            #expect(try await ids("?sub_park_id=\(north.id)") == [lab.id, factory.id])
            #expect(try await ids("?kind=enterprise&sub_park_id=\(north.id)") == [factory.id])
            #expect(try await ids("?kind=institute&sub_park_id=\(south.id)") == [southLab.id])
            #expect(try await ids("?sub_park_id=\(newID())") == [])
            #expect(try await ids("").count == 7)  // with the operator
            // Filters apply within what the caller may see.
            #expect(try await ids("?kind=institute", key: north.key) == [lab.id])
            #expect(try await ids("?sub_park_id=\(south.id)", key: north.key) == [])

            // Paging a filtered listing one at a time covers it exactly once.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await api.call(.get, "/v1/organizations?kind=institute&limit=1" + (cursor.map { "&cursor=\($0)" } ?? ""))
                seen += page.json["data"].array.compactMap { $0["id"].string }
                cursor = page.json["next_cursor"].string
            } while cursor != nil && seen.count < 5
            #expect(seen.count == 2 && Set(seen) == [lab.id, southLab.id])
            // The organization body.
            let body = try await api.call(.get, "/v1/organizations/\(lab.id)")
            #expect(body.json.keys == ["id", "name", "kind", "sub_park_id", "country", "created_at"], "\(body)")
            #expect(body.json["sub_park_id"].string == north.id && body.json["kind"].string == "institute")
        }
    }
}
