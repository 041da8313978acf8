import Foundation
import HTTPTypes
@testable import Server
import Synchronization
import TechBank
import Testing

/// The reports' part of `Sources/Server/openapi.json` (`GET /v1/reports/deals` and
/// `/v1/reports/transfers`) against the server: the operations, their statuses, parameters and
/// content types (JSON and CSV) are documented, the dimensions are those of `ReportDimension`,
/// and real responses (reports, drill pages, CSV, problems) validate against the schemas.
@Suite("Reports: OpenAPI document")
struct ReportOpenAPITests {
    static let csvType = "text/csv; charset=utf-8"

    /// Per route: operationId, the report schema, the drill page schema, the row schema and the dimensions.
    static let routes: [String: (operationID: String, report: String, page: String, row: String, dimensions: [ReportDimension])] = [
        "GET /v1/reports/deals": ("getDealReport", "DealReport", "DealReportPage", "ReportDeal", ReportDimension.deal),
        "GET /v1/reports/transfers": ("getTransferReport", "TransferReport", "TransferReportPage", "ReportTransfer", ReportDimension.transfer),
    ]

    /// The JSON pointer of a route's 200 schema for `type`.
    static func pointer(_ path: String, _ type: String) -> String {
        "#/paths/\(path.replacingOccurrences(of: "/", with: "~1"))/get/responses/200/content/\(type.replacingOccurrences(of: "/", with: "~1"))/schema"
    }

    /// The documented 200 response of a route.
    static func okResponse(_ name: String) throws -> [String: Any] {
        let operation = try #require(try OpenAPITests.operations(OpenAPITests.document())[name], "\(name) is not documented")
        return try #require((operation["responses"] as? [String: Any])?["200"] as? [String: Any])
    }

    /// The documented CSV header row of a route's drill (in the CSV schema's description).
    static func documentedDrillHeader(_ name: String) throws -> [String] {
        let content = try #require(try okResponse(name)["content"] as? [String: Any])
        let description = try #require(((content[csvType] as? [String: Any])?["schema"] as? [String: Any])?["description"] as? String)
        let row = try #require(routes[name]?.row)
        let marker = "A drill: a header row `"
        let start = try #require(description.range(of: marker), "\(name): the CSV description gives no drill header")
        let end = try #require(description[start.upperBound...].firstIndex(of: "`"))
        let header = description[start.upperBound..<end].split(separator: ",").map(String.init)
        #expect(Set(header) == OpenAPISchemas.properties(try OpenAPISchemas.schemas()[row]), "\(name): the drill CSV columns are the properties of \(row)")
        return header
    }

    @Test func theReportOperationsAreDocumented() throws {
        let document = try OpenAPITests.document()
        let operations = try OpenAPITests.operations(document)
        let paths = try #require(document["paths"] as? [String: Any])
        for (name, route) in Self.routes {
            let operation = try #require(operations[name], "\(name) is not documented")
            let path = String(name.split(separator: " ")[1])
            #expect(operation["operationId"] as? String == route.operationID, "\(name)")
            #expect(operation["tags"] as? [String] == ["reports"], "\(name) is tagged \(operation["tags"] ?? "-")")
            #expect(operation["requestBody"] == nil, "\(name) takes no body")
            let security = operation["security"] as? [[String: Any]] ?? []
            #expect(security.count == 1 && security.first?["bearerAuth"] != nil, "\(name) must require bearerAuth")
            let responses = try #require(operation["responses"] as? [String: Any])
            // Exactly these statuses: 403 for callers who read no reports, 422 for bad parameters.
            #expect(Set(responses.keys) == ["200", "401", "403", "422", "500", "503"], "\(name) documents \(responses.keys.sorted())")
            for (status, response) in responses {
                let response = try #require(response as? [String: Any])
                if let reference = response["$ref"] as? String {
                    let expected = ["401": "Unauthorized", "500": "InternalError", "503": "Unavailable"][status]
                    #expect(reference == "#/components/responses/\(expected ?? "-")", "\(name) \(status) refers to \(reference)")
                    continue
                }
                let content = try #require(response["content"] as? [String: Any], "\(name) \(status) has no content")
                let headers = response["headers"] as? [String: Any] ?? [:]
                #expect(headers["Request-Id"] != nil, "\(name) \(status) must document Request-Id")
                if status == "200" {
                    // A report or a drill page as JSON, or either as CSV; the drill's cursor also as a header.
                    #expect(Set(content.keys) == ["application/json", Self.csvType], "\(name) 200 answers \(content.keys.sorted())")
                    #expect(Set(headers.keys) == ["Request-Id", "Next-Cursor", "Data-Age"], "\(name) 200 headers \(headers.keys.sorted())")
                    #expect((headers["Data-Age"] as? [String: Any])?["$ref"] as? String == "#/components/headers/DataAge")
                    #expect((headers["Next-Cursor"] as? [String: Any])?["$ref"] as? String == "#/components/headers/NextCursor")
                    let json = try #require((content["application/json"] as? [String: Any])?["schema"] as? [String: Any])
                    let alternatives = (json["oneOf"] as? [[String: Any]] ?? []).compactMap { $0["$ref"] as? String }
                    #expect(alternatives == ["#/components/schemas/\(route.report)", "#/components/schemas/\(route.page)"], "\(name) 200: \(json)")
                    let csv = try #require((content[Self.csvType] as? [String: Any])?["schema"] as? [String: Any])
                    #expect(csv["type"] as? String == "string", "\(name): the CSV is a string")
                    let description = csv["description"] as? String ?? ""
                    for phrase in ["RFC 4180", "CRLF", "header row", "one row per group", "quoted", "empty field", "Next-Cursor"] {
                        #expect(description.contains(phrase), "\(name): the CSV description must mention \(phrase)")
                    }
                    #expect(!(csv["examples"] as? [String] ?? []).isEmpty, "\(name): the CSV has an example")
                    for example in csv["examples"] as? [String] ?? [] {
                        let rows = parseCSV(example)
                        #expect(example.hasSuffix("\r\n") && rows.count >= 2 && Set(rows.map(\.count)).count == 1, "\(name): example \(example)")
                    }
                } else {
                    #expect(Set(content.keys) == ["application/problem+json"], "\(name) \(status) must answer a problem")
                    #expect(((content["application/problem+json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String
                            == "#/components/schemas/Problem")
                    #expect(headers.count == 1, "\(name) \(status): only Request-Id")
                }
            }
            let forbidden = (responses["403"] as? [String: Any])?["description"] as? String ?? ""
            #expect(forbidden.contains("`forbidden`") && forbidden.contains("committee") && forbidden.contains("operator") && forbidden.contains("sub-park"))
            let invalid = (responses["422"] as? [String: Any])?["description"] as? String ?? ""
            for phrase in ["`validation_failed`", "`from`", "`to`", "`group_by`", "`drill`", "`limit`", "`cursor`", "\(ReportController.maxDays) days",
                           "\(Reports.maxGroups) groups", "more than \(ReportController.maxDimensions)", "errors[0].field"] {
                #expect(invalid.contains(phrase), "\(name) 422 must mention \(phrase)")
            }

            // Parameters: the period, the grouping, the drill and its paging, Request-Id; no Idempotency-Key.
            let parameters = try AuditOpenAPITests.parameters(operation, pathItem: paths[path] as? [String: Any])
            #expect(Set(parameters.keys) == ["from", "to", "group_by", "drill", "limit", "cursor", "Request-Id"], "\(name): \(parameters.keys.sorted())")
            let references = Set((operation["parameters"] as? [[String: Any]] ?? []).compactMap { $0["$ref"] as? String })
            #expect(references == ["#/components/parameters/Limit", "#/components/parameters/Cursor", "#/components/parameters/RequestId"], "\(name)")
            for (parameter, object) in parameters where parameter != "Request-Id" {
                let schema = object["schema"] as? [String: Any]
                #expect(object["in"] as? String == "query" && object["required"] as? Bool != true, "\(name) \(parameter)")
                if ["from", "to"].contains(parameter) {
                    #expect(schema?["format"] as? String == "date", "\(name) \(parameter) is a date")
                }
            }
            #expect((parameters["from"]?["description"] as? String)?.contains("364 days before `to`") == true)
            #expect((parameters["to"]?["description"] as? String)?.contains("\(ReportController.maxDays) days") == true)
            // The dimensions: listed in group_by's and drill's descriptions, admitted by group_by's pattern.
            let names = route.dimensions.map(\.name)
            let groupBy = parameters["group_by"]?["description"] as? String ?? ""
            let drill = parameters["drill"]?["description"] as? String ?? ""
            #expect(groupBy.contains("Dimensions: " + names.map { "`\($0)`" }.joined(separator: ", ") + "."), "\(name) group_by: \(groupBy)")
            #expect(drill.contains(names.map { "`\($0)`" }.joined(separator: ", ")), "\(name) drill: \(drill)")
            #expect(drill.contains("empty value") && drill.contains("`null`") && drill.contains("`limit`") && drill.contains("`cursor`"), "\(name) drill: \(drill)")
            let pattern = try #require((parameters["group_by"]?["schema"] as? [String: Any])?["pattern"] as? String)
            let other = (name.hasSuffix("deals") ? ReportDimension.transfer : ReportDimension.deal).map(\.name).filter { !names.contains($0) }
            for value in names + ["", names.prefix(3).joined(separator: ","), names.suffix(2).joined(separator: ",")] {
                #expect(value.range(of: pattern, options: .regularExpression) != nil, "\(name): group_by \(value) must match \(pattern)")
            }
            for value in other + ["bogus", names.prefix(4).joined(separator: ","), "\(names[0]),", ",", names[0].uppercased()] {
                #expect(value.range(of: pattern, options: .regularExpression) == nil, "\(name): group_by \(value) must not match \(pattern)")
            }
            // Describes who sees what, the period, the currencies and the CSV.
            let description = operation["description"] as? String ?? ""
            for phrase in ["committee and the operator see everything", "sub-park sees", "403", "keyed by currency", "`Accept: text/csv`", "Next-Cursor", "UTC"] {
                #expect(description.contains(phrase), "\(name)'s description must mention \(phrase)")
            }
        }
        let listed = operations.keys.filter { $0.contains(" /v1/reports") }
        #expect(Set(listed) == Set(Self.routes.keys), "undocumented here: \(Set(listed).symmetricDifference(Self.routes.keys).sorted())")
        let tags = Set((document["tags"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(tags.contains("reports"))
        let header = ((document["components"] as? [String: Any])?["headers"] as? [String: Any])?["NextCursor"] as? [String: Any]
        #expect((header?["description"] as? String)?.contains("absent on the last page") == true)
    }

    @Test func theSchemasDescribeTheFigures() throws {
        let schemas = try OpenAPISchemas.schemas()
        // Response schemas list every property as required (absent values are null), except the
        // group keys, which hold exactly the dimensions grouped by (or drilled into).
        let closed = ["DealReport", "DealReportGroup", "LicencesExecuted", "DealReportPage", "ReportDeal", "TransferReport", "TransferReportGroup",
                      "TransferReportPage", "ReportTransfer"]
        for name in closed {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(Set(schema["required"] as? [String] ?? []) == OpenAPISchemas.properties(schema), "\(name) must require every property")
        }
        // Exactly the fields the server may leave null are nullable.
        func nullable(_ property: Any?) -> Bool {
            guard let property = property as? [String: Any] else { return false }
            if let types = property["type"] as? [String] { return types.contains("null") }
            return (property["oneOf"] as? [[String: Any]] ?? []).contains { $0["type"] as? String == "null" }
        }
        let expectedNullable: [String: Set<String>] = [
            "DealReport": [], "DealReportGroup": ["median_days_listing_to_signed"], "LicencesExecuted": [], "DealReportPage": ["next_cursor"],
            "ReportDeal": ["broker_id", "sub_park_id", "contract_category", "signed_at", "funded_at"], "TransferReport": [], "TransferReportGroup": [],
            "TransferReportPage": ["next_cursor"], "ReportTransfer": ["sub_park_id"],
            "DealReportKey": ["sub_park", "contract_category"], "TransferReportKey": ["sub_park"],
        ]
        for (name, fields) in expectedNullable {
            let properties = schemas[name]?["properties"] as? [String: Any] ?? [:]
            #expect(Set(properties.keys.filter { nullable(properties[$0]) }) == fields, "\(name): nullable \(properties.keys.filter { nullable(properties[$0]) }.sorted())")
        }

        // The dimensions are ReportDimension's, in order, in group_by's enum and as the keys' properties.
        for (name, route) in Self.routes {
            let names = route.dimensions.map(\.name)
            let groupBy = (schemas[route.report]?["properties"] as? [String: Any])?["group_by"] as? [String: Any]
            #expect((groupBy?["items"] as? [String: Any])?["enum"] as? [String] == names, "\(name): group_by enum")
            #expect(groupBy?["maxItems"] as? Int == ReportController.maxDimensions && groupBy?["uniqueItems"] as? Bool == true)
            let key = route.report == "DealReport" ? "DealReportKey" : "TransferReportKey"
            #expect(OpenAPISchemas.properties(schemas[key]) == Set(names), "\(key) lists the dimensions")
            #expect(schemas[key]?["required"] == nil && schemas[key]?["maxProperties"] as? Int == ReportController.maxDimensions)
            let group = route.report + "Group"
            #expect(((schemas[group]?["properties"] as? [String: Any])?["key"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/\(key)")
            // The drilled key echoes `drill` as sent: its dimensions, any value or null.
            let drill = (schemas[route.page]?["properties"] as? [String: Any])?["drill"] as? [String: Any]
            #expect((drill?["propertyNames"] as? [String: Any])?["enum"] as? [String] == names, "\(name): drill names the dimensions")
            #expect((drill?["additionalProperties"] as? [String: Any])?["type"] as? [String] == ["string", "null"])
            #expect(drill?["maxProperties"] as? Int == ReportController.maxDimensions)
            let groups = (schemas[route.report]?["properties"] as? [String: Any])?["groups"] as? [String: Any]
            #expect(groups?["maxItems"] as? Int == Reports.maxGroups)
            let data = (schemas[route.page]?["properties"] as? [String: Any])?["data"] as? [String: Any]
            #expect((data?["items"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/\(route.row)" && data?["maxItems"] as? Int == 200)
        }
        // Amounts are objects keyed by currency.
        let amounts = try #require(schemas["ReportAmounts"])
        #expect((amounts["propertyNames"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/Currency")
        #expect((amounts["additionalProperties"] as? [String: Any])?["type"] as? String == "integer")
        let dealGroup = schemas["DealReportGroup"]?["properties"] as? [String: Any] ?? [:]
        for figure in ["total_amount", "licence_income", "escrow_outstanding"] {
            #expect((dealGroup[figure] as? [String: Any])?["$ref"] as? String == "#/components/schemas/ReportAmounts", "\(figure)")
        }
        #expect(((schemas["TransferReportGroup"]?["properties"] as? [String: Any])?["amount"] as? [String: Any])?["$ref"] as? String
                == "#/components/schemas/ReportAmounts")
        #expect(OpenAPISchemas.properties(schemas["LicencesExecuted"]) == ["exclusive", "sole", "non_exclusive", "assignment"])

        // Each figure says which date it is counted by and what it counts.
        let descriptions = dealGroup.mapValues { ($0 as? [String: Any])?["description"] as? String ?? "" }
        let phrases: [String: [String]] = [
            "deals": ["created_at"], "signed": ["signed_at"], "total_amount": ["signed_at", "upfront plus every milestone"],
            "licence_income": ["`seller_income`", "`broker_fee`", "`sub_park_fee`", "`metadata.deal_id`", "escrow", "buyer", "created_at", "does not count"],
            "escrow_outstanding": ["`funded`", "`disputed`", "funded_at"], "median_days_listing_to_signed": ["whole UTC days", "listing", "`null`"],
        ]
        for (figure, phrases) in phrases {
            for phrase in phrases {
                #expect(descriptions[figure]?.contains(phrase) == true, "\(figure) must mention \(phrase): \(descriptions[figure] ?? "-")")
            }
        }
        #expect((schemas["LicencesExecuted"]?["description"] as? String)?.contains("signed_at") == true)
        let states = ((schemas["DealReport"]?["properties"] as? [String: Any])?["technologies_by_state"] as? [String: Any]) ?? [:]
        #expect((states["propertyNames"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/TechnologyStatus")
        #expect((states["description"] as? String)?.contains("snapshot") == true && (states["description"] as? String)?.contains("members own") == true)
        let transfers = (schemas["TransferReportGroup"]?["description"] as? String) ?? ""
        #expect(transfers.contains("`posted`") && transfers.contains("`post_pending`") && transfers.contains("`pending`") && transfers.contains("`void_pending`"))
        // The CSV columns of the reports.
        let dealCSV = try #require(((try Self.okResponse("GET /v1/reports/deals")["content"] as? [String: Any])?[Self.csvType] as? [String: Any])?["schema"] as? [String: Any])
        for column in ["`deals`", "`signed`", "`total_amount_<CURRENCY>`", "`licences_executed_exclusive`", "`licences_executed_sole`",
                       "`licences_executed_non_exclusive`", "`licences_executed_assignment`", "`licence_income_<CURRENCY>`", "`escrow_outstanding_<CURRENCY>`",
                       "`median_days_listing_to_signed`", "`technologies_by_state` is not part"] {
            #expect((dealCSV["description"] as? String)?.contains(column) == true, "the deal CSV must describe \(column)")
        }
        let transferCSV = try #require(((try Self.okResponse("GET /v1/reports/transfers")["content"] as? [String: Any])?[Self.csvType] as? [String: Any])?["schema"] as? [String: Any])
        for column in ["`count`", "`amount_<CURRENCY>`"] {
            #expect((transferCSV["description"] as? String)?.contains(column) == true, "the transfer CSV must describe \(column)")
        }
        for name in Self.routes.keys { _ = try Self.documentedDrillHeader(name) }
    }

    /// Real responses of both reports (grouped in several ways, as every kind of caller that may
    /// read them), drill pages, CSV and problems match the document; JSON validates with Python's
    /// `jsonschema` against closed schemas, CSV as the string it is.
    @Test func realResponsesMatchTheSchemas() async throws {
        let collected = Mutex<[(label: String, schema: String, body: Data)]>([])
        try await withAPI { api in
            let f = try await api.reportFixture()
            var record: [(label: String, schema: String, response: APIResponse)] = []
            let dealsPath = "/v1/reports/deals", transfersPath = "/v1/reports/transfers"

            // Reports as JSON: the key holds exactly the dimensions grouped by.
            let reports: [(String, [(String, String)], String)] = [
                (dealsPath, [], f.a.committee.key), (dealsPath, [("group_by", "sub_park,field")], operatorKey),
                (dealsPath, [("group_by", "currency,deal_kind")], operatorKey), (dealsPath, [("group_by", "year,quarter,month")], operatorKey),
                (dealsPath, [("group_by", "institute,contract_category")], f.a.park.key), (dealsPath, [("group_by", "sub_park")], f.b.park.key),
                (dealsPath, [("from", "2020-01-01"), ("to", "2020-12-31"), ("group_by", "field")], operatorKey),
                (transfersPath, [], operatorKey), (transfersPath, [("group_by", "sub_park,code")], f.a.committee.key),
                (transfersPath, [("group_by", "code,currency")], f.b.park.key), (transfersPath, [("group_by", "year,quarter,month")], operatorKey),
                (transfersPath, [("from", "2020-01-01"), ("to", "2020-12-31")], operatorKey),
            ]
            for (path, parameters, key) in reports {
                let response = try await api.reportOK(path, parameters, key: key)
                let name = "GET \(path)"
                let label = "\(path) \(parameters)"
                #expect(response.contentType == "application/json" && response.headers[ReportController.nextCursorHeader] == nil, "\(label): \(response)")
                let groupBy = response.json["group_by"].array.compactMap(\.string)
                #expect(groupBy == (parameters.first { $0.0 == "group_by" }?.1.split(separator: ",").map(String.init) ?? []), "\(label): \(response)")
                #expect(response.json["groups"].array.allSatisfy { $0["key"].keys == Set(groupBy) }, "\(label): \(response)")
                record.append((label, try #require(Self.routes[name]?.report), response))
                record.append((label + " (as the route's 200)", Self.pointer(path, "application/json"), response))
            }

            // Drill pages: the cursor in the body and in Next-Cursor, absent on the last page.
            let drills: [(String, String, String, Int)] = [
                (dealsPath, "sub_park:\(f.a.park.id),field:environmental_technology", operatorKey, 2), (dealsPath, "sub_park:", operatorKey, 0),
                (dealsPath, "institute:\(f.b.seller.id)", f.b.park.key, 1),
                (transfersPath, "sub_park:\(f.b.park.id),code:seller_income", f.a.committee.key, 2), (transfersPath, "sub_park:,code:deposit", operatorKey, 2),
            ]
            for (path, drill, key, expected) in drills {
                var cursor: String?
                var rows = 0
                for page in 1...10 {
                    let parameters = [("drill", drill), ("limit", "1")] + (cursor.map { [("cursor", $0)] } ?? [])
                    let response = try await api.reportOK(path, parameters, key: key)
                    let label = "\(path) drill \(drill) page \(page)"
                    #expect(response.contentType == "application/json", "\(label): \(response)")
                    #expect(response.headers[ReportController.nextCursorHeader] == response.json["next_cursor"].string, "\(label): \(response)")
                    #expect(response.json["drill"].keys == Set(drill.split(separator: ",").map { String($0.prefix { $0 != ":" }) }), "\(label): \(response)")
                    rows += response.json["data"].array.count
                    record.append((label, try #require(Self.routes["GET \(path)"]?.page), response))
                    record.append((label + " (as the route's 200)", Self.pointer(path, "application/json"), response))
                    cursor = response.json["next_cursor"].string
                    if cursor == nil { break }
                }
                #expect(cursor == nil, "\(path) drill \(drill): paging did not end")
                #expect(rows == expected, "\(path) drill \(drill): \(rows) rows")
            }

            // CSV: the content type, the header row and one row per group (or per drilled row).
            func csv(_ path: String, _ parameters: [(String, String)], key: String = operatorKey) async throws -> APIResponse {
                let response = try await api.reportOK(path, parameters, key: key, csv: true)
                let label = "\(path) \(parameters) as CSV"
                #expect(response.contentType == Self.csvType && response.text.hasSuffix("\r\n"), "\(label): \(response)")
                record.append((label, Self.pointer(path, Self.csvType), response))
                return response
            }
            let dealParameters = [("group_by", "sub_park,field")]
            let dealJSON = try await api.reportOK(dealsPath, dealParameters).json
            let dealCSV = parseCSV(try await csv(dealsPath, dealParameters).text)
            let currencies = Set(dealJSON["groups"].array.flatMap { $0["total_amount"].keys }).sorted()
            #expect(currencies == ["CNY", "USD"])
            let dealHeader = ["sub_park", "field", "deals", "signed"] + currencies.map { "total_amount_\($0)" }
                + ["exclusive", "sole", "non_exclusive", "assignment"].map { "licences_executed_\($0)" }
                + currencies.map { "licence_income_\($0)" } + currencies.map { "escrow_outstanding_\($0)" } + ["median_days_listing_to_signed"]
            #expect(dealCSV.first == dealHeader, "\(dealCSV)")
            #expect(dealCSV.count == 1 + dealJSON["groups"].array.count && dealCSV.allSatisfy { $0.count == dealHeader.count }, "\(dealCSV)")
            let emptyCSV = parseCSV(try await csv(dealsPath, [("from", "2020-01-01"), ("to", "2020-01-31")]).text)
            #expect(emptyCSV == [["deals", "signed", "licences_executed_exclusive", "licences_executed_sole", "licences_executed_non_exclusive",
                                  "licences_executed_assignment", "median_days_listing_to_signed"]], "no groups, no currencies: \(emptyCSV)")
            let transferParameters = [("group_by", "sub_park,code")]
            let transferJSON = try await api.reportOK(transfersPath, transferParameters).json
            let transferCSV = parseCSV(try await csv(transfersPath, transferParameters).text)
            #expect(transferCSV.first == ["sub_park", "code", "count", "amount_CNY"], "\(transferCSV)")
            #expect(transferCSV.count == 1 + transferJSON["groups"].array.count, "\(transferCSV)")
            // Drills as CSV: the documented header, the cursor only in Next-Cursor.
            for (path, drill, rows) in [(dealsPath, "sub_park:\(f.a.park.id),field:environmental_technology", 2), (transfersPath, "sub_park:,code:deposit", 2)] {
                let name = "GET \(path)"
                let all = try await csv(path, [("drill", drill)])
                let table = parseCSV(all.text)
                #expect(table.first == (try Self.documentedDrillHeader(name)), "\(name) drill CSV header: \(table.first ?? [])")
                #expect(table.count == 1 + rows && all.headers[ReportController.nextCursorHeader] == nil, "\(name): \(all)")
                let first = try await csv(path, [("drill", drill), ("limit", "1")])
                let next = try #require(first.headers[ReportController.nextCursorHeader], "\(name): \(first)")
                #expect(parseCSV(first.text).count == 2, "\(first)")
                let second = try await csv(path, [("drill", drill), ("limit", "1"), ("cursor", next)])
                #expect(parseCSV(second.text).count == 2 && second.headers[ReportController.nextCursorHeader] == nil, "\(second)")
                #expect(Set(table.dropFirst().map { $0[0] }) == Set([first, second].map { parseCSV($0.text)[1][0] }), "the pages hold the drilled rows")
            }

            // Problems: 401, 403 (before any parameter is looked at), 422 naming the parameter, also for CSV.
            for path in [dealsPath, transfersPath] {
                let unauthorized = try await api.call(.get, path, key: nil)
                expectProblem(unauthorized, .unauthorized, "unauthorized")
                record.append(("401 \(path)", "Problem", unauthorized))
                for (label, org) in [("member", f.a.seller), ("institute", f.a.outsider), ("enterprise", f.a.buyer), ("broker", f.a.broker)] {
                    let response = try await api.report(path, [("group_by", "bogus")], key: org.key, csv: label == "broker")
                    expectProblem(response, .forbidden, "forbidden")
                    record.append(("403 \(path) \(label)", "Problem", response))
                }
                let invalid: [([(String, String)], String)] = [
                    ([("from", "2026-13-01")], "from"), ([("to", "yesterday")], "to"), ([("from", "2026-03-02"), ("to", "2026-03-01")], "from"),
                    ([("from", "2016-01-01"), ("to", "2026-01-08")], "from"), ([("group_by", "bogus")], "group_by"),
                    ([("group_by", "currency,currency")], "group_by"), ([("group_by", "currency,month,year,quarter")], "group_by"),
                    ([("drill", "")], "drill"), ([("drill", "currency")], "drill"), ([("drill", "bogus:1")], "drill"),
                    ([("drill", "currency:CNY"), ("limit", "0")], "limit"), ([("drill", "currency:CNY"), ("cursor", "!!")], "cursor"),
                    ([("drill", "currency:CNY"), ("cursor", Cursor.encode("not a position"))], "cursor"),
                ]
                for (parameters, field) in invalid {
                    let response = try await api.report(path, parameters, key: f.b.park.key, csv: field == "drill")
                    expectInvalid(response, field)
                    record.append(("422 \(path) \(parameters)", "Problem", response))
                }
            }
            // A report's cursor is no other report's.
            let dealCursor = try #require(try await api.reportOK(dealsPath, [("drill", "currency:CNY"), ("limit", "1")]).json["next_cursor"].string)
            let crossed = try await api.report(transfersPath, [("drill", "currency:CNY"), ("cursor", dealCursor)])
            expectInvalid(crossed, "cursor")
            record.append(("422 a deal cursor for transfers", "Problem", crossed))

            let schemas = try OpenAPISchemas.schemas()
            for (label, schema, response) in record {
                #expect(response.status.code < 500, "\(label): \(response)")
                if schema == "Problem" {
                    #expect((400..<500).contains(response.status.code) && response.contentType == "application/problem+json", "\(label): \(response)")
                } else {
                    #expect(response.status == .ok, "\(label): \(response)")
                    if !schema.hasPrefix("#") {
                        #expect(response.json.keys == OpenAPISchemas.properties(schemas[schema]), "\(label): the response's properties differ from \(schema)'s: \(response)")
                    }
                }
                // CSV is validated as the JSON string it is.
                let body = response.contentType == Self.csvType ? try JSONSerialization.data(withJSONObject: response.text, options: [.fragmentsAllowed]) : response.body
                collected.withLock { $0.append((label, schema, body)) }
            }
        }
        let samples = collected.withLock { $0 }
        #expect(samples.count == 86)
        // The response schemas and problems are closed. A route's 200 (named by a JSON pointer: the oneOf
        // of report and drill page, of which exactly one must match, or the CSV string) is used as it stands.
        try expectResponsesMatchSchemas(samples, closing: [
            "DealReport", "DealReportGroup", "DealReportKey", "LicencesExecuted", "DealReportPage", "ReportDeal", "TransferReport",
            "TransferReportGroup", "TransferReportKey", "TransferReportPage", "ReportTransfer", "Problem", "FieldError",
        ])
    }
}
