import Foundation
import HTTPTypes
@testable import Server
import Postgres
import TechBank
import Testing
import TestSupport

/// The console as the server ships it: its assets, their headers, and what the page may do.
@Suite("Console: assets and their headers")
struct ConsoleTests {
    @Test("the page and its assets are served with their types, an ETag, and headers that keep them to this origin")
    func assetsAndHeaders() async throws {
        try await withAPI { api in
            for (path, type) in [("/console", "text/html; charset=utf-8"), ("/console/console.css", "text/css; charset=utf-8"),
                                 ("/console/console.js", "text/javascript; charset=utf-8")] {
                let response = try await api.call(.get, path, key: nil)
                #expect(response.status == .ok, "\(path): \(response)")
                #expect(response.contentType == type, "\(path)")
                #expect(response.headers[.contentSecurityPolicy] == ConsoleController.contentSecurityPolicy)
                #expect(response.headers[.xContentTypeOptions] == "nosniff" && response.headers[.referrerPolicy] == "no-referrer")
                let etag = try #require(response.headers[.eTag], "\(path)")
                #expect(etag.range(of: #"^"[0-9a-f]{24}"$"#, options: .regularExpression) != nil, "the documented form: \(etag)")
                let again = try await api.call(.get, path, key: nil, headers: [.ifNoneMatch: etag])
                #expect(again.status == .notModified && again.body.isEmpty, "\(path): \(again)")
                #expect(try await api.call(.get, path, key: nil, headers: [.ifNoneMatch: "\"other\""]).status == .ok)
            }
            for missing in ["/console/index.html", "/console/other.js", "/console/..%2Fopenapi.json"] {
                expectProblem(try await api.call(.get, missing, key: nil), .notFound, "not_found")
            }
        }
    }

    @Test("the policy forbids inline scripts, eval and other origins")
    func thePolicy() {
        let directives = ConsoleController.contentSecurityPolicy.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(directives.contains("default-src 'self'") && directives.contains("script-src 'self'") && directives.contains("connect-src 'self'"))
        #expect(!ConsoleController.contentSecurityPolicy.contains("unsafe"), "no 'unsafe-inline' or 'unsafe-eval'")
    }

    @Test("the page has no inline script, handler or style, and no script writes HTML or reaches another origin")
    func thePageKeepsToThePolicy() throws {
        let page = String(decoding: try #require(ConsoleController.assets["index.html"]).body, as: UTF8.self)
        let scripts = ConsoleController.assets.filter { $0.key.hasSuffix(".js") }
        #expect(Set(scripts.keys) == ["console.js", "ui.js", "views.js", "reports.js", "texts.js", "audit.js"])
        let scriptTags = page.components(separatedBy: "<script").dropFirst()
        #expect(scriptTags.count == 1 && scriptTags.allSatisfy { $0.hasPrefix(" type=\"module\" src=\"/console/console.js\"></script>") },
                "one module from /console/, which imports the others")
        #expect(page.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil, "no inline event handlers")
        #expect(page.range(of: #"\sstyle\s*="#, options: .regularExpression) == nil && !page.contains("<style"), "no inline styles")
        for (name, asset) in scripts {
            let script = String(decoding: asset.body, as: UTF8.self)
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout(\"", "setInterval(\""] {
                #expect(!script.contains(sink), "\(name) must not use \(sink): texts from the API go in as text")
            }
            for module in script.matches(of: /from "([^"]+)"/).map({ String($0.output.1) }) {
                #expect(module.hasPrefix("./") && scripts[String(module.dropFirst(2))] != nil, "\(name) imports only the console's own modules: \(module)")
            }
        }
        for (name, asset) in ConsoleController.assets {
            // The SVG namespace's name is a URI that nothing fetches.
            let text = String(decoding: asset.body, as: UTF8.self).replacingOccurrences(of: "\"http://www.w3.org/2000/svg\"", with: "")
            #expect(text.range(of: #"(https?:)?//[a-z0-9.-]+\.[a-z]"#, options: .regularExpression) == nil, "\(name) names no other origin")
        }
    }

    @Test("the OpenAPI document names every asset the server serves")
    func documentedAssets() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPI.document) as? [String: Any])
        let path = try #require((document["paths"] as? [String: Any])?["/console/{file}"] as? [String: Any])
        let parameter = try #require((path["parameters"] as? [[String: Any]])?.first)
        let documented = try #require((parameter["schema"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(documented) == Set(ConsoleController.assets.keys).subtracting(["index.html"]))
    }
}

/// The console in a real browser: headless Chromium driven by `Tests/Browser/console.py`
/// (Playwright for Python), against the app on a local port, on the demo data set. `.ci/run`
/// installs both when missing.
@Suite("Console: in headless Chromium")
struct ConsoleBrowserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every view for the committee, an institute and a sub-park: approve a deal, search a title holding HTML, a report with its chart, table and CSV, the audit log verified in the browser and a forged proof refused; both languages; desktop and phone")
    func everyView() async throws {
        let output = Self.root.appendingPathComponent(".build/test-output/console")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try await TestDatabase.withPool(template: .techbank) { pool in
            let demo = try await DemoData.seed(pool)
            let waiting = try #require(demo.deals[.approvalRequired])
            @Sendable func key(_ kind: OrganizationKind) throws -> [String: String] {
                let entry = try #require(demo.keys.first { $0.kind == kind })
                return ["key": entry.secret, "name": entry.organization]
            }
            try await withAPI(on: pool, live: true) { api in
                let institute = try key(.institute)
                let xssTitle = "Solar film <img src=x onerror=alert(document.domain)> 太阳能薄膜"
                let registered = try await api.call(.post, "/v1/technologies", key: institute["key"], json: technologyBody(xssTitle, ipRights: [ipRight("CN202310999999.1")]))
                #expect(registered.status == .created, "\(registered)")
                let port = try #require(api.client.port)
                let setup: [String: Any] = [
                    "base": "http://127.0.0.1:\(port)", "output": output.path, "xss_title": xssTitle,
                    "committee": try key(.committee), "institute": institute, "sub_park": try key(.subPark),
                ]
                let (status, printed) = try await ChildProcess.run(["/usr/bin/env", "python3", Self.root.appendingPathComponent("Tests/Browser/console.py").path,
                                                            String(decoding: try JSONSerialization.data(withJSONObject: setup), as: UTF8.self)])
                #expect(status == 0, "the browser test failed:\n\(printed)")
                print(printed)
                // What the browser did, as the database recorded it.
                let decisions = try await pool.withConnection { connection in
                    try await connection.query("SELECT decision, reason FROM techbank.deal_approvals WHERE deal_id = $1", [waiting])
                        .map { [try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1)] }
                }
                #expect(decisions == [["approve", "Cross-border terms reviewed by the committee."]])
            }
        }
    }
}
