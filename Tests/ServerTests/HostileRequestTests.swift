import Foundation
import HTTPTypes
import NIOCore
import Testing

/// A tenant with an ordinary API key sends what no client should: none of it may stop the server
/// or get a 5xx; each is a 4xx problem naming what is wrong.
@Suite("API: a hostile tenant")
struct HostileRequestTests {
    /// A cursor as the API would make it, around a forged position.
    static func forgedCursor(_ position: String) -> String {
        Data(position.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static let sevenDigits = "2026-01-01T00:00:00.1234567Z"

    @Test("a time with seven fractional digits cannot stop the server")
    func sevenFractionalDigits() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let account = try await api.createAccount(for: tenant)
            let forged = Self.forgedCursor("\(Self.sevenDigits)|\(newID())")
            let requests: [(String, String, String)] = [
                ("/v1/audit/events?from=\(Self.sevenDigits)", "from", tenant.key),
                ("/v1/audit/events?to=2026-01-01T00:00:00.123456789%2B08:00", "to", tenant.key),
                ("/v1/deals?cursor=\(forged)", "cursor", tenant.key),
                ("/v1/matches?cursor=\(forged)", "cursor", tenant.key),
                ("/v1/organizations/\(tenant.id)/api-keys?cursor=\(forged)", "cursor", operatorKey),
            ]
            for (uri, field, key) in requests {
                let response = try await api.call(.get, uri, key: key)
                expectInvalid(response, field)
                #expect(response.json["errors"][0]["message"].string?.contains("at most six fractional digits") == true, "\(response)")
            }
            // The ledger's own parameter is refused too (its message is the ledger controller's).
            expectInvalid(try await api.call(.get, "/v1/accounts/\(account)/balance?at=\(Self.sevenDigits)", key: tenant.key), "at")
            #expect(try await api.call(.get, "/healthz", key: nil).status == .ok, "the server still answers")
        }
    }

    @Test("a forged cursor with an impossible time or id cannot trap the server: it is a 422")
    func forgedCursors() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let positions = ["2026-02-30T00:00:00Z|\(newID())", "2026-01-01T24:00:00Z|\(newID())", "٢٠٢٦-01-01T00:00:00Z|\(newID())",
                             "2026-01-01T00:00:00Z|not-a-uuid", "2026-01-01T00:00:00Z", "|", "", "2026-01-01T00:00:00Z||\(newID())",
                             "99999-01-01T00:00:00Z|\(newID())", "2026-01-01T00:00:00Z|\(newID())|extra"]
            for position in positions {
                for path in ["/v1/deals", "/v1/matches"] {
                    expectInvalid(try await api.call(.get, "\(path)?cursor=\(Self.forgedCursor(position))", key: tenant.key), "cursor")
                }
            }
            #expect(try await api.call(.get, "/v1/deals?cursor=\(Self.forgedCursor("2026-01-01T00:00:00Z|\(newID())"))", key: tenant.key).status == .ok)
        }
    }

    @Test("a tenant's NUL in any query parameter is a 422 naming the parameter, not a 500")
    func nulInQueryParameters() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let park = try await api.createOrganization("Tenant Park", kind: "sub_park")
            let requests: [(String, String, String)] = [
                ("/v1/technologies?field=%00", "field", tenant.key), ("/v1/technologies?field=biomedicine%00x", "field", tenant.key),
                ("/v1/demands?field=%00", "field", tenant.key), ("/v1/technologies?q=a%00b", "q", tenant.key),
                ("/v1/demands?status=%00", "status", tenant.key), ("/v1/deals?technology_id=%00", "technology_id", tenant.key),
                ("/v1/audit/events?type=%00", "type", tenant.key), ("/v1/audit/events?from=%00", "from", tenant.key),
                ("/v1/organizations?cursor=%00", "cursor", tenant.key), ("/v1/technologies?limit=1&unknown=%00", "unknown", tenant.key),
                ("/v1/reports/deals?drill=field:%00", "drill", park.key), ("/v1/reports/transfers?group_by=%00", "group_by", park.key),
            ]
            for (uri, field, key) in requests {
                let response = try await api.call(.get, uri, key: key)
                expectInvalid(response, field)
                #expect(response.json["errors"][0]["message"].string == "must not contain the NUL character", "\(response)")
            }
            // A NUL before authentication is still a 401: the key is checked first.
            expectProblem(try await api.call(.get, "/v1/technologies?field=%00", key: nil), .unauthorized, "unauthorized")
        }
    }

    @Test("a tenant's body not labelled JSON is 415, and a corrected retry with the same Idempotency-Key goes through")
    func bodiesMustBeJSON() async throws {
        try await withAPI { api in
            let body = #"{"name":"Plain Lab","kind":"institute","country":"CN"}"#
            for contentType in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/json; charset=iso-8859-1",
                                "multipart/form-data; boundary=x", "application/+json", "json", "text/json", ""] {
                let response = try await api.call(.post, "/v1/organizations", raw: body, headers: [.contentType: contentType])
                expectProblem(response, .unsupportedMediaType, "unsupported_media_type")
            }
            let unlabelled = try await api.client.executeRequest(
                uri: "/v1/organizations", method: .post, headers: [.authorization: "Bearer \(operatorKey)"], body: ByteBuffer(string: body))
            #expect(unlabelled.status == .unsupportedMediaType, "\(unlabelled)")
            let listed = try await api.call(.get, "/v1/organizations?kind=institute")
            #expect(listed.json["data"].array.isEmpty, "no refused body created anything: \(listed)")

            let retried = try await api.call(.post, "/v1/organizations", raw: body, headers: [.contentType: "text/plain", .tbIdempotencyKey: "plain-1"])
            expectProblem(retried, .unsupportedMediaType, "unsupported_media_type")
            let corrected = try await api.call(.post, "/v1/organizations", raw: body, headers: [.tbIdempotencyKey: "plain-1"])
            #expect(corrected.status == .created && corrected.headers[.tbIdempotentReplayed] == nil, "\(corrected)")

            for contentType in ["application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json", #"application/json;charset="UTF-8""#] {
                let response = try await api.call(.post, "/v1/organizations", raw: body.replacingOccurrences(of: "Plain", with: newID()),
                                                   headers: [.contentType: contentType])
                #expect(response.status == .created, "\(contentType): \(response)")
            }
        }
    }

    @Test func headIsAnsweredWhereverGetIs() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            for (uri, key) in [("/healthz", nil), ("/openapi.json", nil), ("/v1/organizations/\(tenant.id)", tenant.key),
                               ("/v1/technologies?limit=5", tenant.key), ("/v1/organizations/\(newID())", tenant.key),
                               ("/v1/organizations/\(tenant.id)", nil), ("/v1/nothing-here", tenant.key), ("/v1/deals?limit=0", tenant.key)] as [(String, String?)] {
                let get = try await api.call(.get, uri, key: key)
                let head = try await api.call(.head, uri, key: key)
                #expect(head.status == get.status && head.body.isEmpty, "\(head) after \(get)")
                for name in [HTTPField.Name.contentType, .contentLength, .eTag, .wwwAuthenticate] {
                    #expect(head.headers[name] == get.headers[name], "\(name) of HEAD \(uri)")
                }
            }
        }
    }

    @Test("a method a path does not declare is 405 with Allow, before authentication; unknown paths stay 404")
    func methodNotAllowed() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.delete, "/v1/deals", "GET, HEAD, POST"), (.put, "/v1/transfers", "POST"), (.get, "/v1/transfers/batch", "POST"),
                (.patch, "/v1/fields", "GET, HEAD"), (.post, "/healthz", "GET, HEAD"), (.options, "/v1/organizations", "GET, HEAD, POST"),
                (.head, "/v1/transfers", "POST"), (.put, "/v1/organizations/\(tenant.id)", "GET, HEAD, PATCH"),
                (.put, "/v1/organizations/not-a-uuid", "GET, HEAD, PATCH"),
                (.get, "/v1/deals/\(newID())/propose", "POST"),
            ]
            for (method, uri, allow) in cases {
                for key in [tenant.key, nil] {
                    let response = try await api.call(method, uri, key: key)
                    #expect(response.status == .methodNotAllowed && response.headers[.allow] == allow, "\(response) Allow: \(response.headers[.allow] ?? "-")")
                    if method != .head { expectProblem(response, .methodNotAllowed, "method_not_allowed") }
                }
            }
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/nothing-here"), (.delete, "/v1/deals/\(newID())/nothing"), (.get, "/v1"), (.get, "/")] {
                expectProblem(try await api.call(method, uri, key: tenant.key), .notFound, "not_found")
            }
        }
    }

    @Test("random requests from a tenant with an ordinary key never stop the server or get a 5xx")
    func randomRequests() async throws {
        // Not the event stream: it answers a stream that ends when the client goes away, which this
        // client, reading whole bodies, never does (EventStreamTests read it as a client does).
        let operations = try OpenAPITests.operations(OpenAPITests.document()).filter { _, operation in
            let ok = (operation["responses"] as? [String: Any])?["200"] as? [String: Any]
            return (ok?["content"] as? [String: Any])?["text/event-stream"] == nil
        }.keys.sorted().map { $0.split(separator: " ").map(String.init) }
        try await withAPI { api in
            var fuzz = Fuzz("random requests")
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let account = try await api.createAccount(for: tenant)
            let ids = [tenant.id, account, tenant.keyID, newID()]
            let parameters = ["limit", "cursor", "from", "to", "at", "status", "field", "q", "type", "subject_id", "group_by", "drill", "seq", "size", "before"]
            let values = ["1", "200", "2026-01-01T00:00:00Z", "2026-01-01", "open", "biomedicine", tenant.id, "field:biomedicine", "0", HostileRequestTests.sevenDigits]
            let bodies = [#"{"owner_id":"\#(tenant.id)","currency":"CNY"}"#, #"{"name":"X","kind":"broker","country":"CN"}"#,
                          #"{"id":"\#(newID())","debit_account_id":"\#(account)","credit_account_id":"\#(account)","amount":1,"currency":"CNY"}"#]
            let segments = ["..", "%00", "٣", "%2F", String(repeating: "9", count: 40), "-1", "batch"]
            for _ in 0..<1_000 {
                let operation = fuzz.pick(operations)
                let path = operation[1].split(separator: "/").map { segment in
                    guard segment.hasPrefix("{") else { return fuzz.chance(40) ? fuzz.pick(segments) : String(segment) }
                    return fuzz.chance(4) ? fuzz.pick(segments) : fuzz.chance(3) ? String(fuzz.int(0...3)) : fuzz.pick(ids)
                }.joined(separator: "/")
                let query = (0..<fuzz.int(0...3)).map { _ in
                    let value = fuzz.input { $0.pick(values) }
                    return fuzz.pick(parameters) + "=" + (value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
                }.joined(separator: "&")
                let method = fuzz.chance(5) ? fuzz.pick([HTTPRequest.Method.get, .post, .patch, .put, .delete, .head]) : HTTPRequest.Method(operation[0])!
                var headers: HTTPFields = [.contentType: fuzz.pick(["application/json", "application/json", "text/plain", "application/x+json"])]
                if fuzz.chance(4) { headers[.ifMatch] = fuzz.pick(["\"v1\"", "*", "garbage"]) }
                if fuzz.chance(4) { headers[.tbIdempotencyKey] = fuzz.input { _ in newID() } }
                let body = [HTTPRequest.Method.post, .patch, .put].contains(method) ? fuzz.input { $0.pick(bodies) } : nil
                let response = try await api.call(method, "/" + path + (query.isEmpty ? "" : "?" + query), key: tenant.key, raw: body, headers: headers)
                #expect(response.status.code < 500, "seed \(fuzz.seed): \(response)")
            }
            #expect(try await api.call(.get, "/healthz", key: nil).status == .ok)
        }
    }
}
