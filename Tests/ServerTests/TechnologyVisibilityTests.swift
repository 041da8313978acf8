import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: visibility and confidentiality")
struct TechnologyVisibilityTests {
    static let secret = "配方机密-TOP-SECRET-4711"

    @Test func theDescriptionIsForTheOwnerTheCommitteeAndTheOperatorOnly() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let lab = try await api.createOrganization("SIMM Lab", kind: "institute", subParkID: park.id)
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Acme Ltd", kind: "enterprise")
            let neighbour = try await api.createOrganization("Neighbour Co", kind: "enterprise", subParkID: park.id)
            let otherPark = try await api.createOrganization("Other Park", kind: "sub_park")
            let broker = try await api.createOrganization("Broker Co", kind: "broker")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let id = try await api.registerTechnologyID(as: lab, technologyBody("Tumor immunotherapy antibody", description: Self.secret))

            let readers: [(String, String)] = [("owner", lab.key), ("committee", committee.key), ("operator", operatorKey)]
            let outsiders: [(String, String)] = [("rival", rival.key), ("enterprise", enterprise.key), ("neighbour", neighbour.key),
                                                 ("other park", otherPark.key), ("broker", broker.key)]

            /// What each organization sees of the technology now.
            func check(listed: Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                for (label, key) in readers {
                    let response = try await api.technology(id, key: key, sourceLocation: sourceLocation)
                    #expect(response.status == .ok && response.json["description"].string == Self.secret, "\(label): \(response)", sourceLocation: sourceLocation)
                    let found = try await api.searchAll(key: key, sourceLocation: sourceLocation).first { $0["id"].string == id }
                    #expect(found?["description"].string == Self.secret, "\(label) search: \(String(describing: found))", sourceLocation: sourceLocation)
                    _ = try await api.technologyHistory(id, key: key, sourceLocation: sourceLocation)
                }
                // The owner's sub-park sees it, listed or not, but never the description.
                let parkView = try await api.technology(id, key: park.key, sourceLocation: sourceLocation)
                #expect(parkView.status == .ok && parkView.json["description"].isNull && parkView.json["title"].string != nil, "park: \(parkView)",
                        sourceLocation: sourceLocation)
                #expect(!parkView.text.contains(Self.secret), sourceLocation: sourceLocation)
                let parkSearch = try await api.call(.get, technologiesURI([("limit", "200")]), key: park.key, sourceLocation: sourceLocation)
                #expect(parkSearch.json["data"].array.contains { $0["id"].string == id && $0["description"].isNull } && !parkSearch.text.contains(Self.secret),
                        "park search: \(parkSearch)", sourceLocation: sourceLocation)
                _ = try await api.technologyHistory(id, key: park.key, sourceLocation: sourceLocation)

                for (label, key) in outsiders {
                    let response = try await api.technology(id, key: key, sourceLocation: sourceLocation)
                    let search = try await api.call(.get, technologiesURI([("limit", "200")]), key: key, sourceLocation: sourceLocation)
                    let history = try await api.call(.get, "/v1/technologies/\(id)/history", key: key, sourceLocation: sourceLocation)
                    #expect(!response.text.contains(Self.secret) && !search.text.contains(Self.secret), "\(label) reads the secret", sourceLocation: sourceLocation)
                    if listed {
                        #expect(response.status == .ok && response.json.keys.contains("description") && response.json["description"].isNull,
                                "\(label): \(response)", sourceLocation: sourceLocation)
                        #expect(search.json["data"].array.contains { $0["id"].string == id && $0["description"].isNull }, "\(label): \(search)",
                                sourceLocation: sourceLocation)
                        #expect(history.status == .ok, "\(label): \(history)", sourceLocation: sourceLocation)
                    } else {
                        expectProblem(response, .notFound, "not_found", sourceLocation: sourceLocation)
                        #expect(!search.json["data"].array.contains { $0["id"].string == id }, "\(label): \(search)", sourceLocation: sourceLocation)
                        expectProblem(history, .notFound, "not_found", sourceLocation: sourceLocation)
                    }
                }
            }

            try await check(listed: false)                     // registered
            try await api.moveAll(id, ["custody"], key: lab.key)
            try await check(listed: false)                     // in custody
            let listing = try await api.move(id, "listing", key: lab.key)
            #expect(listing.json["description"].string == Self.secret, "the owner's move returns the description: \(listing)")
            try await check(listed: true)                      // listed
            try await api.moveAll(id, ["withdraw"], key: lab.key)
            try await check(listed: false)                     // withdrawn

            // Searching never matches the description, even for those who may read it.
            for (label, key) in readers {
                #expect(try await api.searchIDs([("q", "TOP-SECRET-4711")], key: key).isEmpty, "\(label)")
                #expect(try await api.searchIDs([("q", "配方机密")], key: key).isEmpty, "\(label)")
            }
            #expect(try await api.searchIDs([("q", "immunotherapy")], key: lab.key) == [id])
        }
    }

    /// For every route that takes a technology id, another organization's unlisted technology
    /// answers exactly like one that does not exist: 404, same code, detail and errors.
    @Test func anotherTenantsUnlistedTechnologiesLookLikeMissingOnes() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Acme Ltd", kind: "enterprise")
            var hidden: [(state: String, id: String)] = []
            let setups: [(String, [String])] = [("registered", []), ("in_custody", ["custody"]), ("withdrawn after listing", ["custody", "listing", "withdraw"])]
            for (state, moves) in setups {
                let id = try await api.registerTechnologyID(as: lab, technologyBody(state))
                try await api.moveAll(id, moves, key: lab.key)
                hidden.append((state, id))
            }
            struct Probe {
                let label: String
                let method: HTTPRequest.Method
                let suffix: String
                var json: [String: Any]? = nil
                var headers: HTTPFields = [:]
            }
            let probes = [
                Probe(label: "GET", method: .get, suffix: ""),
                Probe(label: "PATCH", method: .patch, suffix: "", json: ["title": "Mine now"], headers: [.ifMatch: "\"v1\""]),
                Probe(label: "PATCH without If-Match", method: .patch, suffix: "", json: ["title": "Mine now"]),
                Probe(label: "PATCH with a bad body", method: .patch, suffix: "", json: ["trl": 99], headers: [.ifMatch: "\"v1\""]),
                Probe(label: "GET history", method: .get, suffix: "/history"),
                Probe(label: "POST custody", method: .post, suffix: "/custody"),
                Probe(label: "POST listing", method: .post, suffix: "/listing"),
                Probe(label: "POST withdraw", method: .post, suffix: "/withdraw"),
            ]
            let missing = newID()
            for org in [rival, enterprise] {
                for (state, id) in hidden {
                    for probe in probes {
                        let forOther = try await api.call(probe.method, "/v1/technologies/\(id)\(probe.suffix)", key: org.key, json: probe.json, headers: probe.headers)
                        let forMissing = try await api.call(probe.method, "/v1/technologies/\(missing)\(probe.suffix)", key: org.key, json: probe.json,
                                                            headers: probe.headers)
                        expectProblem(forOther, .notFound, "not_found")
                        #expect(forOther.problemShape == forMissing.problemShape,
                                "\(probe.label) (\(state)): another tenant's id answers differently from a missing one:\n  other:   \(forOther.problemShape)\n  missing: \(forMissing.problemShape)")
                    }
                }
            }
            // Ids that are not UUIDs name nothing: 404 on every route.
            for probe in probes {
                expectProblem(try await api.call(probe.method, "/v1/technologies/not-a-uuid\(probe.suffix)", key: lab.key, json: probe.json, headers: probe.headers),
                              .notFound, "not_found")
            }
            // Nothing changed.
            for (state, id) in hidden {
                let t = try await api.technology(id, key: lab.key)
                #expect(t.json["title"].string == state, "\(t)")
                #expect(try await api.technologyHistory(id, key: lab.key).count == [1, 2, 4][hidden.firstIndex { $0.id == id } ?? 0])
            }
            // Without a key every technology route is 401, before anything else.
            for probe in probes + [Probe(label: "list", method: .get, suffix: "-")] {
                let uri = probe.suffix == "-" ? "/v1/technologies" : "/v1/technologies/\(hidden[0].id)\(probe.suffix)"
                expectProblem(try await api.call(probe.method, uri, key: nil, json: probe.json, headers: probe.headers), .unauthorized, "unauthorized")
            }
        }
    }
}
