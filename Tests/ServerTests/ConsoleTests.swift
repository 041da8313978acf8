import Foundation
import HTTPTypes
@testable import Server
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

    @Test("the page has no inline script, handler or style, and the script never writes HTML or reaches another origin")
    func thePageKeepsToThePolicy() throws {
        let page = String(decoding: try #require(ConsoleController.assets["index.html"]).body, as: UTF8.self)
        let script = String(decoding: try #require(ConsoleController.assets["console.js"]).body, as: UTF8.self)
        let style = String(decoding: try #require(ConsoleController.assets["console.css"]).body, as: UTF8.self)
        let scriptTags = page.components(separatedBy: "<script").dropFirst()
        #expect(!scriptTags.isEmpty && scriptTags.allSatisfy { $0.hasPrefix(" src=\"/console/") && $0.contains("></script>") }, "scripts only from /console/")
        #expect(page.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil, "no inline event handlers")
        #expect(page.range(of: #"\sstyle\s*="#, options: .regularExpression) == nil && !page.contains("<style"), "no inline styles")
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout(\"", "setInterval(\""] {
            #expect(!script.contains(sink), "the script must not use \(sink): texts from the API go in as text")
        }
        for asset in [page, script, style] {
            #expect(asset.range(of: #"(https?:)?//[a-z0-9.-]+\.[a-z]"#, options: .regularExpression) == nil, "no other origin")
        }
    }
}

/// The console in a real browser: headless Chromium driven by `Tests/Browser/console.py`
/// (Playwright for Python), against the app on a local port. `.ci/run` installs both when missing.
@Suite("Console: in headless Chromium")
struct ConsoleBrowserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("sign in (a wrong key refused), the organization's name and kind, both languages, sign out; desktop and phone; nothing from another origin")
    func signInAndLanguages() async throws {
        let output = Self.root.appendingPathComponent(".build/test-output/console")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try await TestDatabase.withPool(template: .techbank) { pool in
            try await withAPI(on: pool, live: true) { api in
                let committee = try await api.createOrganization("Managing Committee", kind: "committee")
                let port = try #require(api.client.port)
                let (status, printed) = try await Self.run(["python3", Self.root.appendingPathComponent("Tests/Browser/console.py").path,
                                                            "http://127.0.0.1:\(port)", committee.key, "Managing Committee", output.path])
                #expect(status == 0, "the browser test failed:\n\(printed)")
                print(printed)
            }
        }
    }

    /// Runs `arguments` to the end; its exit status and everything it printed.
    static func run(_ arguments: [String]) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let printed = try await Task.detached { String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }.value
        await Task.detached { process.waitUntilExit() }.value
        return (process.terminationStatus, printed)
    }
}
