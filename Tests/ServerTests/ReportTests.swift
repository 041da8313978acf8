import Foundation
import HTTPTypes
@testable import Server
import Testing

// Committee reports: GET /v1/reports/deals and /v1/reports/transfers.

/// Deals across two sub-parks, fields, kinds and currencies, with known money.
///
/// - a1: park A's seller, environmental_technology, non-exclusive, CNY 1M upfront + 2M + 3M;
///   signed and funded: 1M paid out (seller income), 5M still in escrow.
/// - a2: park A's seller, biomedicine, exclusive, USD 6M; signed, not funded.
/// - a3: park A's seller, environmental_technology, a draft (created only).
/// - b1: park B's seller, environmental_technology, sole, CNY 2M upfront + 1M; signed, funded and
///   fully released: 3M seller income, nothing in escrow.
struct ReportFixture: Sendable {
    let a: DealFixture
    let b: DealFixture
    let biomedicineID: String
    let a1: String
    let a2: String
    let a3: String
    let b1: String
}

extension API {
    func reportFixture(sourceLocation: SourceLocation = #_sourceLocation) async throws -> ReportFixture {
        let a = try await dealFixture(sourceLocation: sourceLocation)
        let b = try await dealFixture(sourceLocation: sourceLocation)
        let biomedicineID = try await listedDealTechnology(as: a.seller, "Cell-free protein synthesis kit", field: "biomedicine", sourceLocation: sourceLocation)
        let a3 = try await sellerDealID(a, sourceLocation: sourceLocation)
        let a1 = try await signedDealID(a, sourceLocation: sourceLocation)
        try await fundDeal(a1, a, sourceLocation: sourceLocation)
        let a2 = try await signedDealID(a, dealBody(technologyID: biomedicineID, kind: "exclusive_licence", currency: "USD"), sourceLocation: sourceLocation)
        let b1 = try await signedDealID(b, dealBody(kind: "sole_licence", upfront: 2_000_000, milestones: [dealMilestone("Pilot plant", 1_000_000)]),
                                        sourceLocation: sourceLocation)
        try await fundDeal(b1, b, sourceLocation: sourceLocation)
        try await releaseOK(b1, milestone: 1, key: b.buyer.key, sourceLocation: sourceLocation)
        return ReportFixture(a: a, b: b, biomedicineID: biomedicineID, a1: a1, a2: a2, a3: a3, b1: b1)
    }

    /// `GET path?parameters` as `key`, as CSV if `csv`.
    func report(_ path: String, _ parameters: [(String, String)] = [], key: String = operatorKey, csv: Bool = false,
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, marketURI(path, parameters), key: key, headers: csv ? [.accept: "text/csv"] : [:], sourceLocation: sourceLocation)
    }

    /// A report that must succeed (200).
    func reportOK(_ path: String, _ parameters: [(String, String)] = [], key: String = operatorKey, csv: Bool = false,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        let response = try await report(path, parameters, key: key, csv: csv, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response
    }

    /// Every page of a drill as `key`, `limit` rows per page; returns the rows.
    func drillAll(_ path: String, _ drill: String, key: String = operatorKey, limit: Int = 200,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        var rows: [JSON] = []
        var cursor: String?
        for _ in 0..<50 {
            var parameters = [("drill", drill), ("limit", String(limit))]
            if let cursor { parameters.append(("cursor", cursor)) }
            let response = try await reportOK(path, parameters, key: key, sourceLocation: sourceLocation)
            rows += response.json["data"].array
            #expect(response.headers[ReportController.nextCursorHeader] == response.json["next_cursor"].string, "\(response)", sourceLocation: sourceLocation)
            guard let next = response.json["next_cursor"].string else {
                #expect(response.json["next_cursor"].isNull, "\(response)", sourceLocation: sourceLocation)
                return rows
            }
            cursor = next
        }
        Issue.record("paging did not end", sourceLocation: sourceLocation)
        return rows
    }
}

/// Parses RFC 4180 CSV (CRLF line ends, quoted fields with doubled quotes) into rows of fields.
func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var characters = Array(text.unicodeScalars)[...]
    while let c = characters.popFirst() {
        if quoted {
            if c == "\"" {
                if characters.first == "\"" { field.unicodeScalars.append("\""); characters.removeFirst() } else { quoted = false }
            } else {
                field.unicodeScalars.append(c)
            }
        } else if c == "\"" {
            quoted = true
        } else if c == "," {
            row.append(field); field = ""
        } else if c == "\r" && characters.first == "\n" {
            characters.removeFirst()
            row.append(field); field = ""
            rows.append(row); row = []
        } else {
            field.unicodeScalars.append(c)
        }
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    return rows
}

/// A JSON object of integers, as expected amounts or counts.
func amounts(_ values: [String: Int64]) -> JSON { .object(values.mapValues(JSON.int)) }

/// The licences_executed object: exclusive, sole, non_exclusive, assignment.
func executed(exclusive: Int64 = 0, sole: Int64 = 0, nonExclusive: Int64 = 0, assignment: Int64 = 0) -> JSON {
    amounts(["exclusive": exclusive, "sole": sole, "non_exclusive": nonExclusive, "assignment": assignment])
}

@Suite("Reports: committee reports")
struct ReportTests {
    @Test func dealFiguresPerGroupAreExact() async throws {
        try await withAPI { api in
            let f = try await api.reportFixture()
            // Income is what the deal itself paid (from escrow or the buyer): a transfer anyone else
            // labels as a deal's seller income does not count. The money model keeps tenants from
            // using that label at all (`seller_income` is the bank's code: 422 naming `code`), so
            // the labelled transfers are posted by the operator, who may move any account's money.
            let forgerAccount = try await api.createAccount(for: f.a.outsider, funded: 777)
            let sellerAccount = try await api.createAccount(for: f.a.seller)
            var forged = API.transferBody(forgerAccount, sellerAccount, 777)
            forged["code"] = "seller_income"
            forged["metadata"] = ["deal_id": f.a1, "part": "m1"]
            expectInvalid(try await api.call(.post, "/v1/transfers", key: f.a.outsider.key, json: forged), "code")
            let posted = try await api.call(.post, "/v1/transfers", json: forged)
            try #require(posted.status == .created, "\(posted)")
            // Nor does one the buyer sends to itself, or in another currency than the deal's.
            let buyerUSD = try await api.createAccount(for: f.a.buyer, currency: "USD", funded: 555)
            let buyerUSD2 = try await api.createAccount(for: f.a.buyer, currency: "USD")
            var selfPaid = API.transferBody(buyerUSD, buyerUSD2, 555, currency: "USD")
            selfPaid["code"] = "seller_income"
            selfPaid["metadata"] = ["deal_id": f.a1, "part": "m1"]
            expectInvalid(try await api.call(.post, "/v1/transfers", key: f.a.buyer.key, json: selfPaid), "code")
            let moved = try await api.call(.post, "/v1/transfers", json: selfPaid)
            try #require(moved.status == .created, "\(moved)")
            let response = try await api.reportOK("/v1/reports/deals", [("group_by", "sub_park,field")], key: f.a.committee.key)
            let body = response.json
            #expect(body["from"].string == utcDate(-364) && body["to"].string == utcDate(0), "\(response)")
            #expect(body["group_by"] == .array([.string("sub_park"), .string("field")]))
            let expected: [JSON] = [
                .object(["key": .object(["sub_park": .string(f.a.park.id), "field": .string("biomedicine")]), "deals": .int(1), "signed": .int(1),
                         "total_amount": amounts(["USD": 6_000_000]), "licences_executed": executed(exclusive: 1),
                         "licence_income": amounts(["USD": 0]), "escrow_outstanding": amounts(["USD": 0]), "median_days_listing_to_signed": .int(0)]),
                .object(["key": .object(["sub_park": .string(f.a.park.id), "field": .string("environmental_technology")]), "deals": .int(2), "signed": .int(1),
                         "total_amount": amounts(["CNY": 6_000_000]), "licences_executed": executed(nonExclusive: 1),
                         "licence_income": amounts(["CNY": 1_000_000]), "escrow_outstanding": amounts(["CNY": 5_000_000]),
                         "median_days_listing_to_signed": .int(0)]),
                .object(["key": .object(["sub_park": .string(f.b.park.id), "field": .string("environmental_technology")]), "deals": .int(1), "signed": .int(1),
                         "total_amount": amounts(["CNY": 3_000_000]), "licences_executed": executed(sole: 1),
                         "licence_income": amounts(["CNY": 3_000_000]), "escrow_outstanding": amounts(["CNY": 0]),
                         "median_days_listing_to_signed": .int(0)]),
            ]
            let groups = body["groups"].array.sorted { "\($0["key"])" < "\($1["key"])" }
            #expect(groups == expected.sorted { "\($0["key"])" < "\($1["key"])" }, "\(response)")

            // Grouped by currency and kind instead: the same deals, split differently.
            let byCurrency = try await api.reportOK("/v1/reports/deals", [("group_by", "currency,deal_kind")]).json["groups"].array
            let summary = byCurrency.map { "\($0["key"]["currency"].string ?? "-")/\($0["key"]["deal_kind"].string ?? "-") \($0["deals"]) \($0["signed"]) \($0["total_amount"])" }
            #expect(summary.sorted() == [
                "CNY/non_exclusive_licence 2 1 {\"CNY\":6000000}", "CNY/sole_licence 1 1 {\"CNY\":3000000}", "USD/exclusive_licence 1 1 {\"USD\":6000000}",
            ], "\(byCurrency)")

            // No grouping: one group, amounts per currency; technologies by state over everything.
            let total = try await api.reportOK("/v1/reports/deals", key: f.b.committee.key).json
            #expect(total["group_by"] == .array([]))
            #expect(total["groups"].array.count == 1)
            let all = total["groups"][0]
            #expect(all["key"] == .object([:]) && all["deals"] == .int(4) && all["signed"] == .int(3), "\(total)")
            #expect(all["total_amount"] == amounts(["CNY": 9_000_000, "USD": 6_000_000]), "\(total)")
            #expect(all["licence_income"] == amounts(["CNY": 4_000_000, "USD": 0]), "\(total)")
            #expect(all["escrow_outstanding"] == amounts(["CNY": 5_000_000, "USD": 0]), "\(total)")
            #expect(all["licences_executed"] == executed(exclusive: 1, sole: 1, nonExclusive: 1), "\(total)")
            var states: [String: Int64] = [:]
            for id in [f.a.technologyID, f.b.technologyID, f.biomedicineID] {
                let status = try #require(try await api.technology(id).json["status"].string)
                states[status, default: 0] += 1
            }
            #expect(total["technologies_by_state"] == amounts(states), "\(total)")

            // Time buckets: everything happened today.
            let today = utcDate(0)
            let month = Int(today.dropFirst(5).prefix(2))!
            let timed = try await api.reportOK("/v1/reports/deals", [("group_by", "year,quarter,month")]).json["groups"].array
            #expect(timed.count == 1 && timed[0]["key"] == .object([
                "year": .string(String(today.prefix(4))), "quarter": .string("\(today.prefix(4))-Q\((month - 1) / 3 + 1)"), "month": .string(String(today.prefix(7))),
            ]) && timed[0]["deals"] == .int(4), "\(timed)")

            // A period without activity has no groups.
            let empty = try await api.reportOK("/v1/reports/deals", [("from", "2020-01-01"), ("to", "2020-12-31"), ("group_by", "field")]).json
            #expect(empty["groups"] == .array([]) && empty["from"].string == "2020-01-01" && empty["to"].string == "2020-12-31", "\(empty)")
        }
    }

    @Test func transferFiguresPerGroupAreExact() async throws {
        try await withAPI { api in
            let f = try await api.reportFixture()
            let response = try await api.reportOK("/v1/reports/transfers", [("group_by", "sub_park,code")], key: f.a.committee.key)
            func summary(_ groups: [JSON]) -> [String] {
                groups.map { "\($0["key"]["sub_park"].string ?? "none") \($0["key"]["code"].string ?? "-") \($0["count"]) \($0["amount"])" }.sorted()
            }
            // Settled transfers only: deposits, escrow releases (posted holds), seller income and the
            // inventors' half of it (60/40); the holds themselves move no money yet.
            #expect(summary(response.json["groups"].array) == [
                "\(f.a.park.id) inventor_share 2 {\"CNY\":500000}", "\(f.a.park.id) seller_income 1 {\"CNY\":1000000}",
                "\(f.b.park.id) inventor_share 4 {\"CNY\":1500000}", "\(f.b.park.id) seller_income 2 {\"CNY\":3000000}",
                "none deposit 2 {\"CNY\":9000000}", "none escrow_release 3 {\"CNY\":4000000}",
            ].sorted(), "\(response)")
            #expect(response.json["group_by"] == .array([.string("sub_park"), .string("code")]))

            // A sub-park sees only transfers touching its members' (or its own) accounts.
            let parkB = try await api.reportOK("/v1/reports/transfers", [("group_by", "code,currency")], key: f.b.park.key).json["groups"].array
            #expect(parkB.map { "\($0["key"]["code"].string ?? "-") \($0["key"]["currency"].string ?? "-") \($0["count"]) \($0["amount"])" }.sorted() == [
                "inventor_share CNY 4 {\"CNY\":1500000}", "seller_income CNY 2 {\"CNY\":3000000}",
            ], "\(parkB)")

            // Drill: exactly the transfers behind one group.
            let drilled = try await api.drillAll("/v1/reports/transfers", "sub_park:\(f.b.park.id),code:seller_income", limit: 1)
            #expect(drilled.map { $0["amount"] }.sorted { ($0.int ?? 0) < ($1.int ?? 0) } == [.int(1_000_000), .int(2_000_000)], "\(drilled)")
            #expect(drilled.allSatisfy { $0["code"] == .string("seller_income") && $0["currency"] == .string("CNY") && $0["sub_park_id"] == .string(f.b.park.id) })
            // Null sub-park (an empty value) drills into the deposits.
            let deposits = try await api.drillAll("/v1/reports/transfers", "sub_park:,code:deposit")
            #expect(deposits.map { $0["amount"] }.sorted { ($0.int ?? 0) < ($1.int ?? 0) } == [.int(3_000_000), .int(6_000_000)], "\(deposits)")
            // A sub-park drilling into another's group finds nothing.
            #expect(try await api.drillAll("/v1/reports/transfers", "sub_park:\(f.b.park.id)", key: f.a.park.key).isEmpty)
        }
    }

    @Test func csvCarriesTheSameNumbers() async throws {
        try await withAPI { api in
            let f = try await api.reportFixture()
            let parameters = [("group_by", "sub_park,field")]
            let json = try await api.reportOK("/v1/reports/deals", parameters).json
            let csv = try await api.reportOK("/v1/reports/deals", parameters, csv: true)
            #expect(csv.contentType == "text/csv; charset=utf-8")
            #expect(csv.text.hasSuffix("\r\n"))
            let rows = parseCSV(csv.text)
            let header = try #require(rows.first)
            #expect(header == [
                "sub_park", "field", "deals", "signed", "total_amount_CNY", "total_amount_USD", "licences_executed_exclusive", "licences_executed_sole",
                "licences_executed_non_exclusive", "licences_executed_assignment", "licence_income_CNY", "licence_income_USD",
                "escrow_outstanding_CNY", "escrow_outstanding_USD", "median_days_listing_to_signed",
            ])
            let groups = json["groups"].array
            #expect(rows.count == 1 + groups.count && groups.count == 3, "\(csv.text)")
            for group in groups {
                let row = try #require(rows.dropFirst().first { $0[0] == group["key"]["sub_park"].string && $0[1] == group["key"]["field"].string },
                                       "no CSV row for \(group["key"])")
                let record = Dictionary(uniqueKeysWithValues: zip(header, row))
                #expect(record["deals"] == "\(group["deals"])" && record["signed"] == "\(group["signed"])", "\(row) vs \(group)")
                for currency in ["CNY", "USD"] {
                    for figure in ["total_amount", "licence_income", "escrow_outstanding"] {
                        #expect(record["\(figure)_\(currency)"] == "\(group[figure][currency].int ?? 0)", "\(figure) \(currency): \(row) vs \(group)")
                    }
                }
                for kind in ["exclusive", "sole", "non_exclusive", "assignment"] {
                    #expect(record["licences_executed_\(kind)"] == "\(group["licences_executed"][kind])", "\(kind): \(row) vs \(group)")
                }
                #expect(record["median_days_listing_to_signed"] == "\(group["median_days_listing_to_signed"])")
            }
            #expect(rows.dropFirst().contains { $0[0] == f.b.park.id && $0[4] == "3000000" })

            // Transfers as CSV: the same numbers as JSON.
            let transfersJSON = try await api.reportOK("/v1/reports/transfers", [("group_by", "code")]).json["groups"].array
            let transfersCSV = parseCSV(try await api.reportOK("/v1/reports/transfers", [("group_by", "code")], csv: true).text)
            #expect(transfersCSV.first == ["code", "count", "amount_CNY"])
            #expect(transfersCSV.dropFirst().map { $0.joined(separator: " ") }.sorted()
                    == transfersJSON.map { "\($0["key"]["code"].string ?? "") \($0["count"]) \($0["amount"]["CNY"])" }.sorted())

            // Drill results as CSV: the same deals as JSON.
            let drill = [("drill", "sub_park:\(f.a.park.id),field:environmental_technology")]
            let drillCSV = try await api.reportOK("/v1/reports/deals", drill, csv: true)
            #expect(drillCSV.contentType == "text/csv; charset=utf-8")
            let drillRows = parseCSV(drillCSV.text)
            #expect(drillRows.first?.first == "id" && drillRows.first?.contains("total_amount") == true, "\(drillCSV.text)")
            #expect(Set(drillRows.dropFirst().map { $0[0] }) == [f.a1, f.a3], "\(drillCSV.text)")
            // Asking for JSON, or CSV with q=0, gets JSON.
            let refused = try await api.call(.get, "/v1/reports/deals", headers: [.accept: "text/csv;q=0, application/json"])
            #expect(refused.contentType == "application/json")
        }
    }

    @Test func csvQuotesPerRFC4180() throws {
        let reply = ReportController.csvReply(header: ["plain", "with,comma"], rows: [
            [.string("say \"hi\""), .string("two\r\nlines")], [.null, .integer(-5)], [.number(1.5), .number(2)],
        ])
        let text = String(decoding: reply.body, as: UTF8.self)
        #expect(text == "plain,\"with,comma\"\r\n\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n,-5\r\n1.5,2\r\n")
        #expect(parseCSV(text) == [["plain", "with,comma"], ["say \"hi\"", "two\r\nlines"], ["", "-5"], ["1.5", "2"]])
        #expect(reply.headers[.contentType] == "text/csv; charset=utf-8")
    }

    @Test func drillReturnsTheDealsBehindAGroup() async throws {
        try await withAPI { api in
            let f = try await api.reportFixture()
            let environment = try await api.drillAll("/v1/reports/deals", "sub_park:\(f.a.park.id),field:environmental_technology", limit: 1)
            #expect(Set(environment.compactMap { $0["id"].string }) == [f.a1, f.a3] && environment.count == 2, "\(environment)")
            let a1 = try #require(environment.first { $0["id"].string == f.a1 })
            #expect(a1["seller_id"].string == f.a.seller.id && a1["total_amount"] == .int(6_000_000) && a1["kind"] == .string("non_exclusive_licence")
                    && a1["sub_park_id"].string == f.a.park.id && a1["signed_at"].string != nil, "\(a1)")
            #expect(try await api.drillAll("/v1/reports/deals", "field:biomedicine").compactMap { $0["id"].string } == [f.a2])
            #expect(try await api.drillAll("/v1/reports/deals", "deal_kind:sole_licence,currency:CNY").compactMap { $0["id"].string } == [f.b1])
            #expect(try await api.drillAll("/v1/reports/deals", "institute:\(f.b.seller.id)").compactMap { $0["id"].string } == [f.b1])
            #expect(Set(try await api.drillAll("/v1/reports/deals", "year:\(utcDate(0).prefix(4))").compactMap { $0["id"].string }) == [f.a1, f.a2, f.a3, f.b1])
            #expect(try await api.drillAll("/v1/reports/deals", "sub_park:").isEmpty)
            // The drill echoes its key and period.
            let page = try await api.reportOK("/v1/reports/deals", [("drill", "field:biomedicine,contract_category:licence")]).json
            #expect(page["drill"] == .object(["field": .string("biomedicine"), "contract_category": .string("licence")]) && page["to"].string == utcDate(0))
            // A cursor that this API did not return is refused.
            expectInvalid(try await api.report("/v1/reports/deals", [("drill", "field:biomedicine"), ("cursor", Cursor.encode("not-a-uuid"))]), "cursor")
            expectInvalid(try await api.report("/v1/reports/transfers", [("drill", "code:deposit"), ("cursor", Cursor.encode("x"))]), "cursor")
        }
    }

    @Test func aSubParkSeesOnlyItsMembers() async throws {
        try await withAPI { api in
            let f = try await api.reportFixture()
            let parkA = try await api.reportOK("/v1/reports/deals", [("group_by", "sub_park,field")], key: f.a.park.key).json
            #expect(Set(parkA["groups"].array.map { $0["key"]["sub_park"].string ?? "-" }) == [f.a.park.id], "\(parkA)")
            #expect(parkA["groups"].array.map { $0["deals"].int ?? 0 }.reduce(0, +) == 3, "\(parkA)")
            let parkB = try await api.reportOK("/v1/reports/deals", key: f.b.park.key).json
            #expect(parkB["groups"].array.count == 1 && parkB["groups"][0]["deals"] == .int(1)
                    && parkB["groups"][0]["total_amount"] == amounts(["CNY": 3_000_000]), "\(parkB)")
            // Technologies by state: only the members'.
            let statusB = try #require(try await api.technology(f.b.technologyID).json["status"].string)
            #expect(parkB["technologies_by_state"] == amounts([statusB: 1]), "\(parkB)")
            // Drilling into another park's group finds nothing.
            #expect(try await api.drillAll("/v1/reports/deals", "sub_park:\(f.a.park.id)", key: f.b.park.key).isEmpty)
            #expect(try await api.drillAll("/v1/reports/deals", "institute:\(f.a.seller.id)", key: f.b.park.key).isEmpty)
            #expect(try await api.drillAll("/v1/reports/deals", "institute:\(f.b.seller.id)", key: f.b.park.key).compactMap { $0["id"].string } == [f.b1])

            // A sub-park whose member is only the buyer sees that deal too.
            let parkC = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let buyerC = try await api.createOrganization("Lingang Motors", kind: "enterprise", subParkID: parkC.id)
            let c1 = try await api.sellerDealID(f.b, buyer: buyerC)
            let seenByC = try await api.reportOK("/v1/reports/deals", [("group_by", "sub_park")], key: parkC.key).json["groups"].array
            #expect(seenByC.count == 1 && seenByC[0]["key"]["sub_park"] == .string(f.b.park.id) && seenByC[0]["deals"] == .int(1), "\(seenByC)")
            #expect(try await api.drillAll("/v1/reports/deals", "sub_park:\(f.b.park.id)", key: parkC.key).compactMap { $0["id"].string } == [c1])
            #expect(try await api.reportOK("/v1/reports/deals", key: parkC.key).json["technologies_by_state"] == .object([:]))
            // The operator and the committee see everything.
            for key in [operatorKey, f.a.committee.key] {
                #expect(try await api.reportOK("/v1/reports/deals", key: key).json["groups"][0]["deals"] == .int(5))
            }
        }
    }

    @Test func onlyTheCommitteeTheOperatorAndSubParksReadReports() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let member = try await api.createOrganization("Member Lab", kind: "institute", subParkID: park.id)
            let institute = try await api.createOrganization("Outside Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Outside Co", kind: "enterprise")
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            for path in ["/v1/reports/deals", "/v1/reports/transfers"] {
                for (label, org) in [("member", member), ("institute", institute), ("enterprise", enterprise), ("broker", broker)] {
                    for parameters in [[], [("drill", "currency:CNY")], [("group_by", "bogus")]] {
                        let response = try await api.report(path, parameters, key: org.key)
                        expectProblem(response, .forbidden, "forbidden")
                        #expect(response.status == .forbidden, "\(label) \(path) \(parameters)")
                    }
                }
                expectProblem(try await api.call(.get, path, key: nil), .unauthorized, "unauthorized")
                #expect(try await api.report(path, key: park.key).status == .ok)
            }
        }
    }

    @Test func badParametersAre422() async throws {
        try await withAPI { api in
            for path in ["/v1/reports/deals", "/v1/reports/transfers"] {
                for groupBy in ["bogus", "currency,currency", "currency,month,year,quarter", "currency,", ",", "Currency", "currency;year", "year,bogus"] {
                    expectInvalid(try await api.report(path, [("group_by", groupBy)]), "group_by")
                }
                for (name, value) in [("from", "2026-13-01"), ("from", "yesterday"), ("to", "2026-02-30"), ("to", "20260101"), ("from", "2026-1-01")] {
                    expectInvalid(try await api.report(path, [(name, value)]), name)
                }
                expectInvalid(try await api.report(path, [("from", "2026-03-02"), ("to", "2026-03-01")]), "from")
                expectInvalid(try await api.report(path, [("from", "2016-01-01"), ("to", "2026-01-08")]), "from")  // 3661 days
                #expect(try await api.report(path, [("from", "2016-01-01"), ("to", "2026-01-07")]).status == .ok)  // 3660 days
                for drill in ["", "currency", "bogus:1", "currency:CNY,currency:USD", "currency:CNY,,year:2026", "field:a\u{0}b"] {
                    expectInvalid(try await api.report(path, [("drill", drill)]), "drill")
                }
                expectInvalid(try await api.report(path, [("drill", "currency:CNY"), ("limit", "0")]), "limit")
            }
            // Dimensions of the other report.
            for groupBy in ["field", "institute", "deal_kind", "contract_category"] {
                expectInvalid(try await api.report("/v1/reports/transfers", [("group_by", groupBy)]), "group_by")
                expectInvalid(try await api.report("/v1/reports/transfers", [("drill", "\(groupBy):x")]), "drill")
            }
            expectInvalid(try await api.report("/v1/reports/deals", [("group_by", "code")]), "group_by")
            // Every dimension is accepted where it belongs.
            for groupBy in ["sub_park", "field", "institute", "deal_kind", "contract_category", "currency", "month", "quarter", "year", "field,year,currency"] {
                #expect(try await api.report("/v1/reports/deals", [("group_by", groupBy)]).status == .ok, "\(groupBy)")
            }
            for groupBy in ["currency", "code", "sub_park", "month", "quarter", "year", "code,sub_park,month"] {
                #expect(try await api.report("/v1/reports/transfers", [("group_by", groupBy)]).status == .ok, "\(groupBy)")
            }
        }
    }
}
