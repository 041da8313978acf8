import Foundation

/// The OpenAPI 3.1 document served at `GET /openapi.json` (the resource `openapi.json`).
enum OpenAPI {
    static let document: Data = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
            preconditionFailure("openapi.json is missing from the Server module's resources")
        }
        return data
    }()
}
