import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: search")
struct TechnologySearchTests {
    /// A small bilingual catalogue: (key, title, summary, field, keywords).
    static let catalogue: [(key: String, title: String, summary: String, field: String, keywords: [String])] = [
        ("chip", "基于深度学习的芯片缺陷检测方法", "利用卷积神经网络对晶圆图像进行缺陷检测，提高芯片良率。", "integrated_circuits", ["缺陷检测", "晶圆"]),
        ("electrolyte", "固态电池电解质材料", "一种高离子电导率的硫化物固态电解质，适用于全固态锂电池。", "new_energy_vehicles", ["固态电池"]),
        ("antibody", "肿瘤免疫治疗的双特异性抗体", "靶向PD-1与CTLA-4的双特异性抗体，用于实体肿瘤免疫治疗。", "biomedicine", []),
        ("cathode", "高镍三元正极材料", "用于动力锂离子电池的高镍三元正极材料及其制备方法。", "advanced_materials", ["正极"]),
        ("irrigation-zh", "智能灌溉控制系统", "基于土壤湿度传感的温室智能灌溉。", "artificial_intelligence", []),
        ("solid-state", "Solid-state battery electrolyte", "A sulfide solid electrolyte for all-solid-state lithium batteries.", "new_energy_vehicles", ["battery"]),
        ("nanoparticle", "Tumor-targeting nanoparticle delivery", "Lipid nanoparticles that deliver chemotherapy to tumor tissue.", "biomedicine", []),
        ("wafer", "Wafer defect inspection with machine vision", "Optical inspection of semiconductor wafers for yield.", "integrated_circuits", []),
        ("recycling", "Battery recycling by hydrometallurgy", "Recovers nickel and cobalt from spent cells.", "environmental_technology", ["recycling"]),
        ("irrigation-en", "Smart irrigation controller", "Soil moisture sensing for greenhouse irrigation.", "high_end_equipment", []),
        ("tumour", "Tumour microenvironment imaging", "A fluorescent probe that images the tumour microenvironment.", "biomedicine", []),
    ]

    /// Registers the catalogue for `lab`; returns key → id.
    static func registerCatalogue(_ api: API, for lab: Org) async throws -> [String: String] {
        var ids: [String: String] = [:]
        for entry in catalogue {
            ids[entry.key] = try await api.registerTechnologyID(as: lab, technologyBody(
                entry.title, summary: entry.summary, description: "internal notes: battery tumor 电池 缺陷检测", field: entry.field, keywords: entry.keywords))
        }
        return ids
    }

    @Test func searchFindsChineseAndEnglishTextAndRanksItFirst() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let ids = try await Self.registerCatalogue(api, for: lab)
            let name = Dictionary(uniqueKeysWithValues: ids.map { ($1, $0) })
            func search(_ q: String) async throws -> [String] {
                try await api.searchIDs([("q", q)], key: lab.key).map { name[$0] ?? $0 }
            }

            // Without q: everything, newest first.
            #expect(try await api.searchIDs(key: lab.key).map { name[$0] ?? $0 } == Self.catalogue.map(\.key).reversed())

            #expect(try await search("缺陷检测") == ["chip"])
            #expect(try await search("芯片缺陷") == ["chip"])
            #expect(Set(try await search("电池")) == ["electrolyte", "cathode"], "only the two Chinese battery technologies")
            #expect(try await search("固态电池") == ["electrolyte"])
            #expect(try await search("肿瘤免疫") == ["antibody"])
            #expect(Set(try await search("灌溉")) == ["irrigation-zh"])

            #expect(Set(try await search("battery")) == ["solid-state", "recycling"])
            #expect(Set(try await search("BATTERY")) == ["solid-state", "recycling"], "matching ignores case")
            #expect(try await search("  battery  ") == (try await search("battery")), "q is trimmed")
            #expect(try await search("wafer defect") == ["wafer"])
            // Word similarity: a misspelling still finds the technology.
            #expect(try await search("hydrometalurgy") == ["recycling"])
            // `tumor` is a substring of one title; `tumour` is only similar: the substring match ranks first.
            let tumor = try await search("tumor")
            #expect(tumor.first == "nanoparticle", "\(tumor)")
            #expect(Set(tumor).isSubset(of: ["nanoparticle", "tumour"]), "\(tumor)")
            #expect(try await search("tumour").first == "tumour")
            // Nothing matches words that appear nowhere (the description is never searched).
            #expect(try await search("internal notes").isEmpty)
            #expect(try await search("quantum teleportation").isEmpty)
            #expect(try await search("量子通信").isEmpty)
            // A blank q filters nothing.
            #expect(try await search("   ").count == Self.catalogue.count)

            // Another organization searches only what is listed.
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            #expect(try await api.searchIDs([("q", "电池")], key: rival.key).isEmpty)
            let electrolyte = try #require(ids["electrolyte"])
            try await api.moveAll(electrolyte, ["custody", "listing"], key: lab.key)
            #expect(try await api.searchIDs([("q", "电池")], key: rival.key) == [electrolyte])
            #expect(try await api.searchIDs([("q", "battery")], key: rival.key).isEmpty)
            #expect(try await api.searchIDs(key: rival.key) == [electrolyte])
        }
    }

    /// `%` and `_` in q are text to find, not LIKE wildcards.
    @Test func likeWildcardsInQMatchOnlyThemselves() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let ids = try await Self.registerCatalogue(api, for: lab)
            let percent = try await api.registerTechnologyID(as: lab, technologyBody("Yield up 30% with batch_size tuning", summary: "Process tuning."))
            #expect(try await api.searchIDs([("q", "%")], key: lab.key) == [percent], "q=% matches everything")
            #expect(try await api.searchIDs([("q", "_")], key: lab.key) == [percent], "q=_ matches everything")
            #expect(try await api.searchIDs([("q", "%%%")], key: lab.key).isEmpty)
            #expect(ids.count == Self.catalogue.count)
        }
    }

    @Test func filtersNarrowByFieldTRLStatusOwnerAndSubPark() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let a = try await api.createOrganization("SIMM Lab", kind: "institute", subParkID: park.id)
            let b = try await api.createOrganization("ECNU Lab", kind: "institute")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let a1 = try await api.registerTechnologyID(as: a, technologyBody("a1", field: "biomedicine", trl: 3))
            let a2 = try await api.registerTechnologyID(as: a, technologyBody("a2", field: "integrated_circuits", trl: 7))
            let a3 = try await api.registerTechnologyID(as: a, technologyBody("a3", field: "new_energy_vehicles", trl: 9))
            let a4 = try await api.registerTechnologyID(as: a, technologyBody("a4", field: "biomedicine", trl: 1))
            let b1 = try await api.registerTechnologyID(as: b, technologyBody("b1", field: "biomedicine", trl: 5))
            let b2 = try await api.registerTechnologyID(as: b, technologyBody("b2", field: "artificial_intelligence", trl: 1))
            try await api.moveAll(a2, ["custody", "listing"], key: a.key)
            try await api.moveAll(a3, ["withdraw"], key: a.key)
            try await api.moveAll(a4, ["custody"], key: a.key)
            try await api.moveAll(b1, ["custody", "listing"], key: b.key)

            func ids(_ parameters: [(String, String)], key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Set<String> {
                let found = try await api.searchIDs(parameters, key: key, sourceLocation: sourceLocation)
                #expect(Set(found).count == found.count, "duplicates: \(found)", sourceLocation: sourceLocation)
                return Set(found)
            }
            for key in [operatorKey, committee.key] {
                #expect(try await ids([], key: key) == [a1, a2, a3, a4, b1, b2])
                #expect(try await ids([("field", "biomedicine")], key: key) == [a1, a4, b1])
                #expect(try await ids([("field", "aerospace")], key: key) == [])
                #expect(try await ids([("field", "no_such_field")], key: key) == [])
                #expect(try await ids([("trl_min", "5")], key: key) == [a2, a3, b1])
                #expect(try await ids([("trl_max", "3")], key: key) == [a1, a4, b2])
                #expect(try await ids([("trl_min", "3"), ("trl_max", "5")], key: key) == [a1, b1])
                #expect(try await ids([("trl_min", "9"), ("trl_max", "9")], key: key) == [a3])
                #expect(try await ids([("trl_min", "6"), ("trl_max", "2")], key: key) == [])
                #expect(try await ids([("status", "registered")], key: key) == [a1, b2])
                #expect(try await ids([("status", "in_custody")], key: key) == [a4])
                #expect(try await ids([("status", "listed")], key: key) == [a2, b1])
                #expect(try await ids([("status", "withdrawn")], key: key) == [a3])
                #expect(try await ids([("status", "licensed")], key: key) == [])
                #expect(try await ids([("owner_id", a.id)], key: key) == [a1, a2, a3, a4])
                #expect(try await ids([("owner_id", b.id)], key: key) == [b1, b2])
                #expect(try await ids([("owner_id", newID())], key: key) == [])
                #expect(try await ids([("owner_id", a.id.uppercased())], key: key) == [a1, a2, a3, a4], "UUIDs in any case")
                #expect(try await ids([("sub_park_id", park.id)], key: key) == [a1, a2, a3, a4])
                #expect(try await ids([("sub_park_id", newID())], key: key) == [])
                #expect(try await ids([("field", "biomedicine"), ("owner_id", b.id)], key: key) == [b1])
                #expect(try await ids([("field", "biomedicine"), ("trl_max", "3"), ("status", "in_custody")], key: key) == [a4])
                #expect(try await ids([("field", "biomedicine"), ("sub_park_id", park.id), ("status", "listed")], key: key) == [])
            }
            // Filters never widen what a caller sees.
            #expect(try await ids([], key: b.key) == [a2, b1, b2])
            #expect(try await ids([("owner_id", a.id)], key: b.key) == [a2])
            #expect(try await ids([("sub_park_id", park.id)], key: b.key) == [a2])
            #expect(try await ids([("status", "registered")], key: b.key) == [b2])
            #expect(try await ids([("status", "withdrawn")], key: b.key) == [])
            #expect(try await ids([], key: park.key) == [a1, a2, a3, a4, b1])
            #expect(try await ids([("status", "registered")], key: park.key) == [a1])
            #expect(try await ids([("owner_id", b.id)], key: park.key) == [b1])
            #expect(try await ids([], key: a.key) == [a1, a2, a3, a4, b1])
        }
    }

    @Test func badParametersAre422NamingThem() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            _ = try await api.registerTechnologyID(as: lab)
            let cases: [(String, [(String, String)])] = [
                ("trl_min", [("trl_min", "0")]), ("trl_min", [("trl_min", "10")]), ("trl_min", [("trl_min", "three")]), ("trl_min", [("trl_min", "")]),
                ("trl_max", [("trl_max", "0")]), ("trl_max", [("trl_max", "-1")]), ("trl_max", [("trl_max", "4.5")]),
                ("status", [("status", "bogus")]), ("status", [("status", "Listed")]), ("status", [("status", "")]),
                ("q", [("q", String(repeating: "a", count: 201))]), ("q", [("q", String(repeating: "电", count: 201))]),
                ("cursor", [("cursor", "!!!")]), ("cursor", [("cursor", "abc")]), ("cursor", [("cursor", Self.cursor("-1"))]),
                ("cursor", [("cursor", Self.cursor("10001"))]), ("cursor", [("cursor", Self.cursor("ten"))]), ("cursor", [("cursor", String(repeating: "A", count: 201))]),
                ("limit", [("limit", "0")]), ("limit", [("limit", "201")]), ("limit", [("limit", "x")]),
                ("owner_id", [("owner_id", "nope")]), ("sub_park_id", [("sub_park_id", "123")]),
            ]
            for (field, parameters) in cases {
                let response = try await api.call(.get, technologiesURI(parameters), key: lab.key)
                expectInvalid(response, field)
            }
            // At the limits: accepted.
            for parameters in [[("q", String(repeating: "a", count: 200))], [("q", String(repeating: "电", count: 200))], [("trl_min", "1"), ("trl_max", "9")],
                               [("limit", "1")], [("limit", "200")], [("cursor", Self.cursor("0"))], [("cursor", Self.cursor("10000"))]] {
                let response = try await api.call(.get, technologiesURI(parameters), key: lab.key)
                #expect(response.status == .ok, "\(parameters): \(response)")
            }
        }
    }

    @Test func pagingVisitsEveryTechnologyExactlyOnce() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            var registered: [String] = []
            for index in 0..<7 {
                registered.append(try await api.registerTechnologyID(as: lab, technologyBody("Sensor fusion variant \(index)", trl: 1 + index % 9)))
            }
            for limit in [1, 2, 3, 6, 7, 8, 50] {
                var pages: [[String]] = []
                var cursor: String?
                repeat {
                    var parameters = [("limit", String(limit))]
                    if let cursor { parameters.append(("cursor", cursor)) }
                    let response = try await api.call(.get, technologiesURI(parameters), key: lab.key)
                    try #require(response.status == .ok, "\(response)")
                    pages.append(response.json["data"].array.compactMap { $0["id"].string })
                    cursor = response.json["next_cursor"].string
                    #expect(cursor != nil || response.json["next_cursor"].isNull, "\(response)")
                    #expect(pages.count <= 10, "paging does not end")
                } while cursor != nil && pages.count <= 10
                let all = pages.flatMap { $0 }
                #expect(all == registered.reversed(), "limit \(limit): \(pages)")
                #expect(pages.dropLast().allSatisfy { $0.count == limit } && pages.count == max(1, (7 + limit - 1) / limit), "limit \(limit): \(pages.map(\.count))")
            }
            // Paging a text search: the same set as one page, each once.
            let onePage = try await api.searchIDs([("q", "sensor fusion")], key: lab.key)
            let paged = try await api.searchAll([("q", "sensor fusion")], key: lab.key, limit: 2).compactMap { $0["id"].string }
            #expect(Set(onePage) == Set(registered) && onePage.count == 7, "\(onePage)")
            #expect(paged == onePage, "\(paged) vs \(onePage)")
            // With filters.
            let filtered = try await api.searchAll([("trl_max", "4")], key: lab.key, limit: 1).compactMap { $0["id"].string }
            #expect(filtered == Array(registered.prefix(4).reversed()), "\(filtered)")
        }
    }

    /// A cursor as this API writes one: base64url of the offset, without padding.
    static func cursor(_ position: String) -> String {
        Data(position.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
