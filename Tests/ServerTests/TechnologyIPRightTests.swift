import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: IP rights")
struct TechnologyIPRightTests {
    /// Four spellings of one Chinese invention patent.
    static let spellings = ["CN 2020 1 0123456.7", "CN202010123456.7", "ZL 202010123456.7", "cn2020-1-0123456.7"]

    @Test func oneRightInEverySpellingIsHeldByOneTechnology() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let first = try await api.registerTechnology(as: lab, technologyBody("Holder", ipRights: [ipRight(Self.spellings[0])]))
            let holder = try #require(first["id"].string)
            #expect(first["ip_rights"][0]["number"].string == Self.spellings[0])
            #expect(first["ip_rights"][0]["normalized_number"].string == "202010123456.7", "\(first)")

            // The holder's own institute may see the holder: it is named.
            for spelling in Self.spellings {
                let response = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody("Copy", ipRights: [ipRight(spelling)]))
                expectRightTaken(response, field: "ip_rights[0]", holder: holder)
                #expect(response.json["detail"].string?.contains(holder) == true, "\(response)")
            }
            // Named by its index, and nothing of the refused registration is kept.
            let fresh = ipRight("CN 2021 1 0999999.1")
            let mixed = try await api.call(.post, "/v1/technologies", key: lab.key,
                                           json: technologyBody("Mixed", ipRights: [fresh, ipRight("US 11,222,333", office: "US"), ipRight("ZL202010123456.7")]))
            expectRightTaken(mixed, field: "ip_rights[2]", holder: holder)
            let freshHolder = try await api.registerTechnology(as: lab, technologyBody("Fresh", ipRights: [fresh, ipRight("US 11,222,333", office: "US")]))
            #expect(freshHolder["ip_rights"].array.compactMap { $0["normalized_number"].string }.sorted() == ["11222333", "202110999999.1"], "\(freshHolder)")

            // The operator reads everything: named too.
            expectRightTaken(try await api.call(.post, "/v1/technologies", json: technologyBody(ipRights: [ipRight("CN202010123456.7")], ownerID: lab.id)),
                             field: "ip_rights[0]", holder: holder)
            #expect(Set(try await api.searchIDs([("owner_id", lab.id)])) == Set([holder, freshHolder["id"].string].compactMap { $0 }))
        }
    }

    @Test func anotherInstituteLearnsTheHolderOnlyOnceItMaySeeIt() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let holder = try await api.registerTechnologyID(as: lab, technologyBody("Holder", ipRights: [ipRight(Self.spellings[0])]))

            // Unlisted: the right is taken, but by whom is not said.
            for spelling in Self.spellings {
                let response = try await api.call(.post, "/v1/technologies", key: rival.key, json: technologyBody("Rival", ipRights: [ipRight(spelling)]))
                expectRightTaken(response, field: "ip_rights[0]", holder: nil)
                #expect(!response.text.contains(holder), "the unlisted holder leaks: \(response)")
            }
            // The operator registering for the rival is told (it may see the holder).
            expectRightTaken(try await api.call(.post, "/v1/technologies", json: technologyBody(ipRights: [ipRight("ZL 202010123456.7")], ownerID: rival.id)),
                             field: "ip_rights[0]", holder: holder)
            // In custody: still hidden.
            try await api.moveAll(holder, ["custody"], key: lab.key)
            expectRightTaken(try await api.call(.post, "/v1/technologies", key: rival.key, json: technologyBody(ipRights: [ipRight("CN202010123456.7")])),
                             field: "ip_rights[0]", holder: nil)
            // Listed: everyone may see the holder, so it is named.
            try await api.moveAll(holder, ["listing"], key: lab.key)
            expectRightTaken(try await api.call(.post, "/v1/technologies", key: rival.key, json: technologyBody(ipRights: [ipRight("cn2020-1-0123456.7")])),
                             field: "ip_rights[0]", holder: holder)
            // Withdrawn: hidden again, and the right stays held.
            try await api.moveAll(holder, ["withdraw"], key: lab.key)
            expectRightTaken(try await api.call(.post, "/v1/technologies", key: rival.key, json: technologyBody(ipRights: [ipRight("CN 2020 1 0123456.7")])),
                             field: "ip_rights[0]", holder: nil)
            #expect(try await api.searchIDs([("owner_id", rival.id)]).isEmpty)
        }
    }

    @Test func aDifferentOfficeOrTypeIsADifferentRight() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            _ = try await api.registerTechnologyID(as: lab, technologyBody(ipRights: [ipRight("CN 2020 1 0123456.7")]))
            let variants: [[String: Any]] = [
                ipRight("CN 2020 1 0123456.7", type: "utility_model"),
                ipRight("CN 2020 1 0123456.7", type: "software_copyright"),
                ipRight("2020 1 0123456.7", office: "US"),
                ipRight("EP 2020 1 0123456.7", office: "EP"),
                ipRight("CN 2020 1 0123456.8"),
            ]
            for variant in variants {
                let t = try await api.registerTechnology(as: lab, technologyBody(ipRights: [variant]))
                #expect(t["ip_rights"].array.count == 1, "\(t)")
            }
            // One technology may hold several distinct rights at once.
            let many = try await api.registerTechnology(as: lab, technologyBody(ipRights: [
                ipRight("JP 2020-123456", office: "JP"), ipRight("JP 2020-123456", office: "JP", type: "design"), ipRight("KR 10-2020-0012345", office: "KR"),
            ]))
            #expect(many["ip_rights"].array.count == 3, "\(many)")
            #expect(try await api.searchIDs(key: lab.key).count == 2 + variants.count)
        }
    }

    @Test func theSameRightTwiceInOneRequestIsAConflictWithoutAHolder() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            for (a, b) in [(Self.spellings[0], Self.spellings[0]), (Self.spellings[1], Self.spellings[2]), (Self.spellings[3], Self.spellings[0])] {
                let response = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(ipRights: [ipRight(a), ipRight(b)]))
                expectProblem(response, .conflict, "ip_right_taken")
                #expect(response.json["holder_technology_id"] == .missing, "\(response)")
                #expect(["ip_rights[0]", "ip_rights[1]"].contains(response.errorFields.first ?? ""), "\(response)")
            }
            // With a distinct right first, the field must name one of the two duplicates, not the innocent ip_rights[0].
            let response = try await api.call(.post, "/v1/technologies", key: lab.key,
                                              json: technologyBody(ipRights: [ipRight("CN 2021 1 0000001.1"), ipRight(Self.spellings[1]), ipRight(Self.spellings[2])]))
            expectProblem(response, .conflict, "ip_right_taken")
            #expect(response.errorFields.count == 1 && ["ip_rights[1]", "ip_rights[2]"].contains(response.errorFields[0]),
                    "the problem names a right that is not duplicated: \(response)")
            #expect(try await api.searchIDs(key: lab.key).isEmpty, "a refused registration left a technology behind")
            // The right is still free afterwards.
            _ = try await api.registerTechnology(as: lab, technologyBody(ipRights: [ipRight(Self.spellings[0]), ipRight("CN 2021 1 0000001.1")]))
        }
    }
}
