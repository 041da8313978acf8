import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// `GET /console`: the committee's web console, HTML, CSS and JavaScript shipped as the Server
/// module's resources (`Console/`) and served from this origin. It uses the API like any client.
/// Every asset carries a strong ETag (a 304 answers an `If-None-Match` that names it) and headers
/// that keep the page to this origin's own scripts: a `Content-Security-Policy` without inline
/// scripts or `eval`, `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.
struct ConsoleController: Sendable {
    struct Asset: Sendable {
        let body: Data
        let contentType: String
        let etag: String
    }

    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    /// The content type of each kind of asset, by file extension.
    static let contentTypes = ["html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
                               "js": "text/javascript; charset=utf-8"]

    /// The assets by the name in their URL (`/console/<name>`): every file of the `Console`
    /// resource folder; the page itself is `index.html`.
    static let assets: [String: Asset] = {
        guard let folder = Bundle.module.url(forResource: "Console", withExtension: nil),
              let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else {
            preconditionFailure("the Server module's Console resources are missing")
        }
        return names.reduce(into: [:]) { assets, name in
            guard let contentType = contentTypes[(name as NSString).pathExtension],
                  let body = try? Data(contentsOf: folder.appendingPathComponent(name)) else { return }
            let digest = SHA256.hash(data: body).prefix(12).map { String(format: "%02x", $0) }.joined()
            assets[name] = Asset(body: body, contentType: contentType, etag: "\"\(digest)\"")
        }
    }()

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.get("console") { request, _ in try Self.serve("index.html", request) }
        router.get("console/:file") { request, context in
            guard let name = context.parameters.get("file"), name != "index.html" else { throw APIError.notFound }
            return try Self.serve(name, request)
        }
    }

    static func serve(_ name: String, _ request: Request) throws -> Response {
        guard let asset = assets[name] else { throw APIError.notFound }
        var headers = HTTPFields()
        headers[.eTag] = asset.etag
        headers[.cacheControl] = "no-cache"
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.referrerPolicy] = "no-referrer"
        if let tags = request.headers[.ifNoneMatch].flatMap(IfMatch.init), tags.matches(asset.etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.body)))
    }
}

extension HTTPField.Name {
    static let referrerPolicy = Self("Referrer-Policy")!
}
