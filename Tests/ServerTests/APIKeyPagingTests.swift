import Foundation
import Testing

@Suite("API keys: listing in pages")
struct APIKeyPagingTests {
    @Test func everyKeyIsListedOnceOldestFirstAcrossPages() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Jinqiao Robotics", kind: "enterprise")
            var issued = [org.keyID]
            for index in 0..<6 {
                let key = try await api.call(.post, "/v1/organizations/\(org.id)/api-keys", json: ["label": "key \(index)"])
                try #require(key.status == .created, "\(key)")
                issued.append(try #require(key.json["id"].string))
            }
            for limit in [1, 2, 4, 7, 50] {
                var listed: [String] = []
                var cursor: String?
                var pages = 0
                repeat {
                    let page = try await api.call(.get, "/v1/organizations/\(org.id)/api-keys?limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? ""))
                    try #require(page.status == .ok, "\(page)")
                    let items = page.json["data"].array
                    #expect(items.count <= limit)
                    listed += items.compactMap { $0["id"].string }
                    cursor = page.json["next_cursor"].string
                    pages += 1
                } while cursor != nil && pages < 20
                #expect(listed == issued, "limit \(limit): every key once, oldest first")
            }
            expectProblem(try await api.call(.get, "/v1/organizations/\(org.id)/api-keys?limit=0"), .unprocessableContent, "validation_failed", fields: ["limit"])
            expectProblem(try await api.call(.get, "/v1/organizations/\(org.id)/api-keys?cursor=bogus"), .unprocessableContent, "validation_failed", fields: ["cursor"])
        }
    }
}
