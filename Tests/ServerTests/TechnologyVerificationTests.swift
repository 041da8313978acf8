import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: verifications")
struct TechnologyVerificationTests {
    func verification(result: String = "confirmed", trl: Int, extra: [String: Any] = [:]) -> [String: Any] {
        ["claim": "Detects 50 nm wafer defects at 99% recall", "method": "Blind test on 10,000 labelled wafers", "result": result,
         "trl_evidenced": trl].merging(extra) { $1 }
    }

    @Test func aConfirmedVerificationEvidencesAndRaisesTheTRL() async throws {
        try await withAPI { api in
            let owner = try await api.createOrganization("Fudan", kind: "institute")
            let lab = try await api.createOrganization("SIMIT test lab", kind: "institute")
            let id = try await api.registerTechnologyID(as: owner, technologyBody(trl: 4))
            try await api.moveAll(id, ["custody", "listing"], key: owner.key)

            // Not confirmed: recorded, the TRL stays as declared and unverified.
            let refuted = try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key, json: verification(result: "not_confirmed", trl: 6))
            #expect(refuted.status == .created, "\(refuted)")
            var technology = try await api.technology(id, key: owner.key)
            #expect(technology.json["trl"].int == 4 && technology.json["trl_verified"] == .bool(false), "\(technology)")

            // Confirmed at a higher level: the TRL rises and is marked verified, as a new version in the history.
            let digest = String(repeating: "ab", count: 32)
            let confirmed = try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key,
                                               json: verification(trl: 6, extra: ["report_sha256": digest]))
            #expect(confirmed.status == .created, "\(confirmed)")
            #expect(confirmed.json["verifier_id"].string == lab.id && confirmed.json["report_sha256"].string == digest, "\(confirmed)")
            technology = try await api.technology(id, key: owner.key)
            #expect(technology.json["trl"].int == 6 && technology.json["trl_verified"] == .bool(true), "\(technology)")
            let history = try await api.technologyHistory(id, key: owner.key)
            #expect(history.last?["event"].string == "verified" && history.last?["actor_id"].string == lab.id, "\(history)")

            // A confirmation below the current TRL changes nothing.
            let lower = try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key, json: verification(trl: 3))
            #expect(lower.status == .created, "\(lower)")
            let after = try await api.technology(id, key: owner.key)
            #expect(after.json["trl"].int == 6 && after.headers[.eTag] == technology.headers[.eTag], "\(after)")

            let list = try await api.call(.get, "/v1/technologies/\(id)/verifications", key: owner.key)
            #expect(list.status == .ok && list.json["data"].array.count == 3, "\(list)")
            #expect(list.json["data"].array.map { $0["result"].string } == ["not_confirmed", "confirmed", "confirmed"], "\(list)")
        }
    }

    @Test func onlyLabsOtherThanTheOwnerVerifyAndBadInputIsNamed() async throws {
        try await withAPI { api in
            let owner = try await api.createOrganization("Fudan", kind: "institute")
            let lab = try await api.createOrganization("SIMIT test lab", kind: "institute")
            let buyer = try await api.createOrganization("SAIC", kind: "enterprise")
            let id = try await api.registerTechnologyID(as: owner)
            // Unlisted: another institute cannot see it at all.
            expectProblem(try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key, json: verification(trl: 5)), .notFound, "not_found")
            expectProblem(try await api.call(.get, "/v1/technologies/\(id)/verifications", key: lab.key), .notFound, "not_found")
            try await api.moveAll(id, ["custody", "listing"], key: owner.key)
            expectProblem(try await api.call(.post, "/v1/technologies/\(id)/verifications", key: owner.key, json: verification(trl: 5)), .forbidden, "forbidden")
            expectProblem(try await api.call(.post, "/v1/technologies/\(id)/verifications", key: buyer.key, json: verification(trl: 5)), .forbidden, "forbidden")
            // The operator acts as an accredited lab.
            #expect(try await api.call(.post, "/v1/technologies/\(id)/verifications", json: verification(trl: 5)).status == .created)

            for (body, field) in [(verification(result: "maybe", trl: 5), "result"), (verification(trl: 0), "trl_evidenced"),
                                  (verification(trl: 10), "trl_evidenced"), (verification(trl: 5, extra: ["claim": " "]), "claim"),
                                  (verification(trl: 5, extra: ["report_sha256": "ABC"]), "report_sha256")] {
                expectProblem(try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key, json: body),
                              .unprocessableContent, "validation_failed", fields: [field])
            }
            expectProblem(try await api.call(.post, "/v1/technologies/\(id)/verifications", key: lab.key, json: verification(trl: 5, extra: ["lab": "x"])),
                          .unprocessableContent, "unknown_field", fields: ["lab"])
            let missing = UUID().uuidString.lowercased()
            expectProblem(try await api.call(.post, "/v1/technologies/\(missing)/verifications", key: lab.key, json: verification(trl: 5)), .notFound, "not_found")
        }
    }
}
