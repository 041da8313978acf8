import Foundation
import HTTPTypes
import Postgres
import TechBank
import Testing

// `GET /v1/demands/{id}/candidates`: listed technologies ranked for a demand. Each fixture is
// built so the right order and most fits are known by construction; the text fit, which comes
// from pg_trgm, is checked against bounds and against word_similarity computed on its own.

@Suite("Demands: candidate ranking")
struct CandidateRankingTests {
    /// The demand of the main fixture: a Chinese enterprise looking for an oncology antibody.
    static let demandKeywords = ["antibody", "oncology"]
    static let budget = (min: 1_000_000, max: 5_000_000, currency: "CNY")

    /// The main fixture: a CN enterprise's demand and five listed technologies A…E (registered in
    /// that order, so a tie would put E first and the expected order can only come from scores),
    /// plus technologies that fit perfectly but are not listed.
    struct Fixture {
        let enterprise: Org
        let labCN: Org
        let labCN2: Org
        let labDE: Org
        let demand: String
        /// A, B, C, D, E.
        let ranked: [String]
        let names: [String: String]
        let unlisted: [String]
    }

    static func fixture(_ api: API) async throws -> Fixture {
        let enterprise = try await rankingOrganization(api, "Shanghai Pharma", kind: "enterprise", country: "CN")
        let labCN = try await rankingOrganization(api, "Fudan Oncology Lab", kind: "institute", country: "CN")
        let labCN2 = try await rankingOrganization(api, "Zhejiang Assay Lab", kind: "institute", country: "CN")
        let labDE = try await rankingOrganization(api, "Munich Agro Institute", kind: "institute", country: "DE")
        let demand = try await rankingDemand(api, as: enterprise, title: "Antibody therapy for oncology", field: "biomedicine",
                                             keywords: demandKeywords, trlMin: 6, budget: budget, region: "CN-SH")

        let antibodyTitle = "Bispecific antibody for oncology"
        let antibodySummary = "A bispecific antibody that targets PD-1 and CTLA-4 in solid tumours (oncology)."
        // A: same field, both keywords (in another case), TRL above the minimum, CNY asking price inside the budget, CN owner.
        let a = try await rankingListed(api, as: labCN, technologyBody(
            antibodyTitle, summary: antibodySummary, field: "biomedicine", trl: 7, keywords: ["ANTIBODY", "Oncology", "biologics"],
            extra: rankingAsking(min: 2_000_000, max: 3_000_000, currency: "CNY")))
        // B: A's twin, but TRL 4 is two below the minimum.
        let b = try await rankingListed(api, as: labCN, technologyBody(
            antibodyTitle, summary: antibodySummary, field: "biomedicine", trl: 4, keywords: ["ANTIBODY", "Oncology", "biologics"],
            extra: rankingAsking(min: 2_000_000, max: 3_000_000, currency: "CNY")))
        // C: same field, unrelated text, no keywords, no asking terms.
        let c = try await rankingListed(api, as: labCN, technologyBody(
            "Hospital bed logistics scheduling", summary: "Queue planning for ward transfers.", field: "biomedicine", trl: 6))
        // D: another field, but the demand's keywords and words; TRL 5 is one below; no asking terms.
        let d = try await rankingListed(api, as: labCN2, technologyBody(
            "Antibody oncology companion assay", summary: "An assay kit that detects antibody response in oncology patients.",
            field: "medical_devices", trl: 5, keywords: ["antibody", "oncology"]))
        // E: another field, unrelated text, TRL 1, asking in USD, German owner.
        let e = try await rankingListed(api, as: labDE, technologyBody(
            "Drip irrigation valve", summary: "A pressure-compensating valve for vineyards.", field: "agriculture", trl: 1,
            extra: rankingAsking(min: 2_000_000, max: 3_000_000, currency: "USD")))

        // A's perfect twins that are not listed: registered, in custody, withdrawn after listing.
        var unlisted: [String] = []
        for moves in [[], ["custody"], ["custody", "listing", "withdraw"]] {
            let id = try await api.registerTechnologyID(as: labCN, technologyBody(
                antibodyTitle, summary: antibodySummary, field: "biomedicine", trl: 9, keywords: demandKeywords,
                extra: rankingAsking(min: 2_000_000, max: 3_000_000, currency: "CNY")))
            try await api.moveAll(id, moves)
            unlisted.append(id)
        }
        return Fixture(enterprise: enterprise, labCN: labCN, labCN2: labCN2, labDE: labDE, demand: demand, ranked: [a, b, c, d, e],
                       names: [a: "A", b: "B", c: "C", d: "D", e: "E"], unlisted: unlisted)
    }

    @Test func fixtureRanksInTheOrderItWasBuiltFor() async throws {
        try await withAPI { api in
            let f = try await Self.fixture(api)
            let candidates = try await rankingCandidates(api, demand: f.demand, key: f.enterprise.key)
            let order = candidates.map { f.names[$0["technology_id"].string ?? ""] ?? ($0["technology_id"].string ?? "?") }
            #expect(order == ["A", "B", "C", "D", "E"], "\(candidates)")
            for candidate in candidates { rankingExpectWellFormed(candidate) }
            let byName = Dictionary(uniqueKeysWithValues: candidates.compactMap { c in f.names[c["technology_id"].string ?? ""].map { ($0, c) } })
            let fits = byName.mapValues(rankingFits)
            guard let a = fits["A"], let b = fits["B"], let c = fits["C"], let d = fits["D"], let e = fits["E"] else {
                Issue.record("a candidate is missing: \(candidates)")
                return
            }

            // The fits that do not depend on pg_trgm, exactly.
            #expect([a.field, a.trl, a.budget, a.region] == [1, 1, 1, 1], "A: \(a)")
            #expect([b.field, b.trl, b.budget, b.region] == [1, 0.5, 1, 1], "B: TRL 4 is two below 6: \(b)")
            #expect([c.field, c.trl, c.budget, c.region] == [1, 1, 0.5, 1], "C: no asking terms: \(c)")
            #expect([d.field, d.trl, d.budget, d.region] == [0, 0.75, 0.5, 1], "D: another field, TRL one below: \(d)")
            #expect([e.field, e.trl, e.budget, e.region] == [0, 0, 0, 0], "E: TRL five below clamps to 0, USD, DE: \(e)")

            // Text: both keywords found (case-insensitively) give at least 0.5; identical text gives identical fits.
            #expect(a.text >= 0.5 && a.text <= 1, "A: \(a)")
            #expect(a.text == b.text, "A and B have the same text: \(a) \(b)")
            #expect(d.text >= 0.5 && d.text <= 1, "D: \(d)")
            #expect(c.text < 0.5 && e.text < 0.5, "no keyword matched: \(c) \(e)")
            #expect(a.text > c.text && a.text > e.text && d.text > c.text && d.text > e.text, "\(a) \(c) \(d) \(e)")

            // Text fit = 0.5 × keyword share + 0.5 × word_similarity(demand, technology), with
            // word_similarity computed here on its own.
            for (name, share) in [("A", 1.0), ("B", 1.0), ("C", 0.0), ("D", 1.0), ("E", 0.0)] {
                guard let id = f.ranked.first(where: { f.names[$0] == name }), let fit = fits[name] else { continue }
                let similarity = try await rankingWordSimilarity(api, demand: f.demand, technology: id)
                #expect(abs(fit.text - (0.5 * share + 0.5 * similarity)) <= 0.00005 + 1e-9, "\(name): \(fit), word_similarity \(similarity)")
            }

            // Scores: the sum of the weighted fits, best first and strictly decreasing.
            let scores = candidates.compactMap { rankingNumber($0["score"]) }
            try #require(scores.count == 5, "\(candidates)")
            #expect(zip(scores, scores.dropFirst()).allSatisfy { $0 > $1 }, "\(scores)")
            #expect(abs(scores[0] - (0.3 + 0.3 * a.text + 0.2 + 0.15 + 0.05)) <= 0.0001, "A: \(scores)")
            #expect(abs(scores[1] - (scores[0] - 0.2 * 0.5)) <= 0.0001 + 1e-9, "B is A less 0.2 × 0.5: \(scores)")

            // Details name the reason.
            let trlDetail = byName["B"]?["reasons"].array.first { $0["factor"].string == "trl" }?["detail"].string ?? ""
            #expect(trlDetail.contains("below"), "\(trlDetail)")
            let budgetDetail = byName["A"]?["reasons"].array.first { $0["factor"].string == "budget" }?["detail"].string ?? ""
            #expect(budgetDetail.contains("overlaps"), "\(budgetDetail)")

            // Nothing that is not listed, whoever asks.
            for key in [f.enterprise.key, operatorKey, f.labDE.key] {
                let ids = try await rankingCandidates(api, demand: f.demand, key: key).compactMap { $0["technology_id"].string }
                #expect(ids == f.ranked, "as \(key): \(ids)")
                #expect(Set(ids).isDisjoint(with: f.unlisted))
            }
        }
    }

    @Test func pagesFollowTheRankingAndEndWithANullCursor() async throws {
        try await withAPI { api in
            let f = try await Self.fixture(api)
            var pages: [[String]] = []
            var cursor: String?
            for _ in 0..<10 {
                var uri = "/v1/demands/\(f.demand)/candidates?limit=2"
                if let cursor { uri += "&cursor=\(queryEncoded(cursor))" }
                let response = try await api.call(.get, uri, key: f.enterprise.key)
                try #require(response.status == .ok, "\(response)")
                pages.append(response.json["data"].array.compactMap { $0["technology_id"].string })
                guard let next = response.json["next_cursor"].string else {
                    #expect(response.json["next_cursor"].isNull, "\(response)")
                    break
                }
                cursor = next
            }
            #expect(pages.map(\.count) == [2, 2, 1], "\(pages)")
            #expect(pages.flatMap { $0 } == f.ranked, "each candidate once, in the ranking's order")

            // A bad cursor or limit is a validation error, not a 500.
            expectInvalid(try await api.call(.get, "/v1/demands/\(f.demand)/candidates?limit=0", key: f.enterprise.key), "limit")
            expectInvalid(try await api.call(.get, "/v1/demands/\(f.demand)/candidates?cursor=%25%25%25", key: f.enterprise.key), "cursor")
        }
    }

    /// A demand never lists its owner's technologies. Over HTTP a demand's owner is an enterprise
    /// and a technology's an institute, so the demand is posted through the library for an institute.
    @Test func theOwnersTechnologiesAreNeverCandidates() async throws {
        try await withAPI { api in
            let f = try await Self.fixture(api)
            let owner = try #require(UUID(uuidString: f.labCN.id))
            let deadline = try #require(PostgresDate(iso8601: rankingDeadline()))
            let demand = try await Demands(pool: api.pool).post(
                NewDemand(ownerID: owner, title: "Antibody therapy for oncology", description: "", field: "biomedicine",
                          keywords: Self.demandKeywords, trlMin: 6, budget: Budget(min: 1_000_000, max: 5_000_000, currency: "CNY"),
                          region: "CN-SH", deadline: deadline),
                actor: owner)
            let ids = try await rankingCandidates(api, demand: demand.id.uuidString.lowercased(), key: f.labDE.key)
                .compactMap { $0["technology_id"].string }
            #expect(ids == Array(f.ranked.suffix(2)), "only D and E, which labCN does not own: \(ids.map { f.names[$0] ?? $0 })")
        }
    }

    @Test func aClosedDemandsCandidatesAreHiddenFromOthers() async throws {
        try await withAPI { api in
            let f = try await Self.fixture(api)
            let rival = try await rankingOrganization(api, "Rival Pharma", kind: "enterprise", country: "CN")
            let uri = "/v1/demands/\(f.demand)/candidates"
            // Open: everyone sees the ranking.
            #expect(try await api.call(.get, uri, key: rival.key).status == .ok)
            #expect(try await api.call(.get, uri, key: f.labDE.key).status == .ok)

            let closed = try await api.call(.post, "/v1/demands/\(f.demand)/close", key: f.enterprise.key)
            try #require(closed.status == .ok, "\(closed)")
            #expect(closed.json["status"].string == "closed")

            let unknown = try await api.call(.get, "/v1/demands/\(newID())/candidates", key: rival.key)
            expectProblem(unknown, .notFound, "not_found")
            for key in [rival.key, f.labDE.key, f.labCN.key] {
                let hidden = try await api.call(.get, uri, key: key)
                expectProblem(hidden, .notFound, "not_found")
                #expect(hidden.problemShape == unknown.problemShape, "a hidden demand looks like a missing one: \(hidden)")
            }
            // Its owner and the operator still see it, ranked as before.
            for key in [f.enterprise.key, operatorKey] {
                let ids = try await rankingCandidates(api, demand: f.demand, key: key).compactMap { $0["technology_id"].string }
                #expect(ids == f.ranked)
            }
        }
    }

    @Test func budgetFitComparesRangesInOneCurrency() async throws {
        try await withAPI { api in
            let buyer = try await rankingOrganization(api, "Budget Buyer", kind: "enterprise", country: "CN")
            let lab = try await rankingOrganization(api, "Budget Lab", kind: "institute", country: "CN")
            // Same field, text and TRL for all: only the asking terms differ.
            let cases: [(name: String, asking: [String: Any], fit: Double)] = [
                ("touches the budget's minimum", rankingAsking(min: 500_000, max: 1_000_000, currency: "CNY"), 1),
                ("touches the budget's maximum", rankingAsking(min: 5_000_000, max: 9_000_000, currency: "CNY"), 1),
                ("open above, starts inside", rankingAsking(min: 4_000_000, max: nil, currency: "CNY"), 1),
                ("open below, ends inside", rankingAsking(min: nil, max: 1_500_000, currency: "CNY"), 1),
                ("above the budget", rankingAsking(min: 5_000_001, max: 9_000_000, currency: "CNY"), 0),
                ("below the budget", rankingAsking(min: 0, max: 999_999, currency: "CNY"), 0),
                ("another currency", rankingAsking(min: 2_000_000, max: 3_000_000, currency: "EUR"), 0),
                ("no asking currency", ["asking_terms": ["deal_kinds": ["assignment"]]], 0.5),
                ("no asking terms", [:], 0.5),
            ]
            var expected: [String: (name: String, fit: Double)] = [:]
            for entry in cases {
                let id = try await rankingListed(api, as: lab, technologyBody(
                    "Cell culture medium", summary: "Serum-free medium.", field: "biomedicine", trl: 6, keywords: ["medium"], extra: entry.asking))
                expected[id] = (entry.name, entry.fit)
            }
            let withBudget = try await rankingDemand(api, as: buyer, title: "Cell culture medium", field: "biomedicine", keywords: ["medium"],
                                                     trlMin: 6, budget: (1_000_000, 5_000_000, "CNY"), region: "CN")
            let ranked = try await rankingCandidates(api, demand: withBudget, key: buyer.key)
            #expect(ranked.count == cases.count)
            for candidate in ranked {
                rankingExpectWellFormed(candidate)
                guard let want = expected[candidate["technology_id"].string ?? ""] else { continue }
                #expect(rankingFits(candidate).budget == want.fit, "\(want.name): \(candidate)")
                #expect(rankingFits(candidate).region == 1, "a CN demand region matches a CN owner: \(candidate)")
            }
            // The order follows the budget fit alone: 1s, then 0.5s, then 0s.
            let order = ranked.compactMap { expected[$0["technology_id"].string ?? ""]?.fit }
            #expect(order == order.sorted(by: >), "\(order)")

            // Without a budget, every technology fits half.
            let noBudget = try await rankingDemand(api, as: buyer, title: "Cell culture medium", field: "biomedicine", keywords: ["medium"],
                                                   trlMin: 6, budget: nil, region: "DE-BY")
            let unbudgeted = try await rankingCandidates(api, demand: noBudget, key: buyer.key)
            #expect(unbudgeted.count == cases.count)
            for candidate in unbudgeted {
                #expect(rankingFits(candidate).budget == 0.5, "\(candidate)")
                #expect(rankingFits(candidate).region == 0, "a DE-BY demand region does not match a CN owner: \(candidate)")
            }
        }
    }

    /// Equal scores: the newer technology first.
    @Test func tiesGoToTheNewerTechnology() async throws {
        try await withAPI { api in
            let buyer = try await rankingOrganization(api, "Tie Buyer", kind: "enterprise", country: "CN")
            let lab = try await rankingOrganization(api, "Tie Lab", kind: "institute", country: "CN")
            var ids: [String] = []
            for _ in 0..<3 {
                ids.append(try await rankingListed(api, as: lab, technologyBody(
                    "Perovskite solar cell", summary: "A tandem cell.", field: "new_energy", trl: 5, keywords: ["perovskite"])))
            }
            let demand = try await rankingDemand(api, as: buyer, title: "Perovskite solar cell", field: "new_energy", keywords: ["perovskite"],
                                                 trlMin: 5, budget: nil, region: "CN")
            let ranked = try await rankingCandidates(api, demand: demand, key: buyer.key)
            #expect(Set(ranked.compactMap { rankingNumber($0["score"]) }).count == 1, "identical technologies score the same: \(ranked)")
            #expect(ranked.compactMap { $0["technology_id"].string } == ids.reversed())
        }
    }

    /// Chinese text ranks too: pg_trgm's word similarity works on Chinese characters, and keywords
    /// match exactly.
    @Test func aChineseDemandRanksTheMatchingTechnologyFirst() async throws {
        try await withAPI { api in
            let buyer = try await rankingOrganization(api, "格林美", kind: "enterprise", country: "CN")
            let lab = try await rankingOrganization(api, "中南大学冶金学院", kind: "institute", country: "CN")
            // Registered first, so it can only come first on score: a tie would put the newer one first.
            let recycling = try await rankingListed(api, as: lab, technologyBody(
                "废旧锂电池回收再利用技术", summary: "从废旧动力电池中湿法回收锂、钴、镍。", field: "environmental_technology", trl: 6))
            let unrelated = try await rankingListed(api, as: lab, technologyBody(
                "城市污水膜生物反应器", summary: "用于市政污水处理的膜生物反应器工艺。", field: "environmental_technology", trl: 6))
            let keyworded = try await rankingListed(api, as: lab, technologyBody(
                "动力电池梯次利用", summary: "退役电池的储能再利用。", field: "environmental_technology", trl: 6, keywords: ["锂电池"]))

            // With a keyword: the keyword match lifts the third technology by 0.15 whatever its text.
            let withKeyword = try await rankingDemand(api, as: buyer, title: "锂电池 回收", field: "environmental_technology", keywords: ["锂电池"],
                                                      trlMin: 5, budget: nil, region: "CN-GD")
            let ranked = try await rankingCandidates(api, demand: withKeyword, key: buyer.key)
            let ids = ranked.compactMap { $0["technology_id"].string }
            #expect(Set(ids) == [recycling, unrelated, keyworded], "\(ranked)")
            #expect((ids.firstIndex(of: recycling) ?? .max) < (ids.firstIndex(of: unrelated) ?? -1), "\(ranked)")
            #expect((ids.firstIndex(of: keyworded) ?? .max) < (ids.firstIndex(of: unrelated) ?? -1), "\(ranked)")
            let fit = Dictionary(uniqueKeysWithValues: ranked.map { ($0["technology_id"].string ?? "", rankingFits($0)) })
            let recyclingText = try #require(fit[recycling]?.text), unrelatedText = try #require(fit[unrelated]?.text)
            #expect(recyclingText > unrelatedText, "the recycling title is similar to 锂电池 回收: \(recyclingText) vs \(unrelatedText)")
            #expect(try #require(fit[keyworded]?.text) >= 0.5, "锂电池 is one of its keywords")
            #expect(recyclingText < 0.5, "锂电池 is not one of its keywords, only in its title")

            // Without keywords, the text fit is the word similarity alone.
            let titleOnly = try await rankingDemand(api, as: buyer, title: "废旧锂电池回收", field: "environmental_technology", keywords: [],
                                                    trlMin: 5, budget: nil, region: "CN")
            let byTitle = try await rankingCandidates(api, demand: titleOnly, key: buyer.key)
            #expect(byTitle.first?["technology_id"].string == recycling, "\(byTitle)")
            for candidate in byTitle {
                let id = try #require(candidate["technology_id"].string)
                let similarity = try await rankingWordSimilarity(api, demand: titleOnly, technology: id)
                #expect(abs(rankingFits(candidate).text - similarity) <= 0.00005 + 1e-9, "\(candidate), word_similarity \(similarity)")
            }
            #expect(rankingFits(try #require(byTitle.first)).text > 0.5, "\(byTitle)")
        }
    }
}

// MARK: Helpers of this file

/// A deadline a year from today (UTC), `YYYY-MM-DD`.
private func rankingDeadline() -> String {
    PostgresDate(daysSince2000: PostgresDate.today().daysSince2000 + 365).description
}

/// A JSON number, integral or not.
private func rankingNumber(_ json: JSON) -> Double? {
    switch json {
    case .int(let value): Double(value)
    case .double(let value): value
    default: nil
    }
}

/// `asking_terms` for `technologyBody(extra:)`.
private func rankingAsking(min: Int?, max: Int?, currency: String) -> [String: Any] {
    var terms: [String: Any] = ["deal_kinds": ["exclusive_licence"], "currency": currency]
    if let min { terms["price_min"] = min }
    if let max { terms["price_max"] = max }
    return ["asking_terms": terms]
}

/// `API.createOrganization`, but in `country`.
private func rankingOrganization(_ api: API, _ name: String, kind: String, country: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> Org {
    let created = try await api.call(.post, "/v1/organizations", json: ["name": name, "kind": kind, "country": country], sourceLocation: sourceLocation)
    try #require(created.status == .created, "\(created)", sourceLocation: sourceLocation)
    #expect(created.json["country"].string == country, sourceLocation: sourceLocation)
    let id = try #require(created.json["id"].string, sourceLocation: sourceLocation)
    let key = try await api.call(.post, "/v1/organizations/\(id)/api-keys", json: ["label": "\(name) key"], sourceLocation: sourceLocation)
    try #require(key.status == .created, "\(key)", sourceLocation: sourceLocation)
    return Org(id: id, key: try #require(key.json["key"].string), keyID: try #require(key.json["id"].string))
}

/// Registers a technology as `lab` and lists it (as the operator); returns its id.
private func rankingListed(_ api: API, as lab: Org, _ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
    let id = try await api.registerTechnologyID(as: lab, body, sourceLocation: sourceLocation)
    try await api.moveAll(id, ["custody", "listing"], sourceLocation: sourceLocation)
    return id
}

/// Posts a demand as the enterprise `org` for itself; returns its id.
private func rankingDemand(
    _ api: API, as org: Org, title: String, field: String, keywords: [String], trlMin: Int, budget: (min: Int, max: Int, currency: String)?,
    region: String, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> String {
    var body: [String: Any] = [
        "title": title, "description": "What we need.", "field": field, "keywords": keywords, "trl_min": trlMin, "region": region,
        "deadline": rankingDeadline(),
    ]
    if let budget { body["budget"] = ["min": budget.min, "max": budget.max, "currency": budget.currency] }
    let response = try await api.call(.post, "/v1/demands", key: org.key, json: body, sourceLocation: sourceLocation)
    try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
    return try #require(response.json["id"].string, sourceLocation: sourceLocation)
}

/// Every candidate of `demand` as `key` sees them, following cursors.
private func rankingCandidates(_ api: API, demand: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
    var items: [JSON] = []
    var cursor: String?
    for _ in 0..<50 {
        var uri = "/v1/demands/\(demand)/candidates?limit=200"
        if let cursor { uri += "&cursor=\(queryEncoded(cursor))" }
        let response = try await api.call(.get, uri, key: key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        items += response.json["data"].array
        guard let next = response.json["next_cursor"].string else { return items }
        cursor = next
    }
    Issue.record("paging did not end", sourceLocation: sourceLocation)
    return items
}

/// pg_trgm's word similarity of a demand's and a technology's search text, from the database.
private func rankingWordSimilarity(_ api: API, demand: String, technology: String) async throws -> Double {
    let demandID = try #require(UUID(uuidString: demand)), technologyID = try #require(UUID(uuidString: technology))
    return try await api.pool.withConnection { connection in
        let rows = try await connection.query(
            """
            SELECT word_similarity(d.search_text, t.search_text)::float8
              FROM techbank.demands d, techbank.technologies t WHERE d.id = $1 AND t.id = $2
            """,
            [demandID, technologyID])
        return try rows[0].decode(Double.self, at: 0)
    }
}

/// A candidate's five fits.
private struct RankingFits: CustomStringConvertible {
    var field = -1.0, text = -1.0, trl = -1.0, budget = -1.0, region = -1.0
    var description: String { "field \(field), text \(text), trl \(trl), budget \(budget), region \(region)" }
}

private func rankingFits(_ candidate: JSON) -> RankingFits {
    var fits = RankingFits()
    for reason in candidate["reasons"].array {
        let fit = rankingNumber(reason["fit"]) ?? -1
        switch reason["factor"].string {
        case "field": fits.field = fit
        case "text": fits.text = fit
        case "trl": fits.trl = fit
        case "budget": fits.budget = fit
        case "region": fits.region = fit
        default: break
        }
    }
    return fits
}

/// Checks a candidate's shape and arithmetic: the five factors in order with their weights, each
/// fit in [0, 1], each contribution weight × fit, and a score in [0, 1] that is their sum.
private func rankingExpectWellFormed(_ candidate: JSON, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(candidate.keys == ["technology_id", "title", "field", "trl", "owner_id", "score", "reasons"], "\(candidate)", sourceLocation: sourceLocation)
    let reasons = candidate["reasons"].array
    #expect(reasons.compactMap { $0["factor"].string } == ["field", "text", "trl", "budget", "region"], "\(candidate)", sourceLocation: sourceLocation)
    #expect(reasons.compactMap { rankingNumber($0["weight"]) } == [0.30, 0.30, 0.20, 0.15, 0.05], "\(candidate)", sourceLocation: sourceLocation)
    var sum = 0.0
    for reason in reasons {
        #expect(reason.keys == ["factor", "weight", "fit", "contribution", "detail"], "\(reason)", sourceLocation: sourceLocation)
        let weight = rankingNumber(reason["weight"]) ?? .nan, fit = rankingNumber(reason["fit"]) ?? .nan
        let contribution = rankingNumber(reason["contribution"]) ?? .nan
        #expect((0...1).contains(fit), "\(reason)", sourceLocation: sourceLocation)
        // Contributions are rounded to 4 decimals.
        #expect(abs(contribution - weight * fit) <= 0.00005 + 1e-9, "\(reason)", sourceLocation: sourceLocation)
        #expect(reason["detail"].string?.isEmpty == false, "\(reason)", sourceLocation: sourceLocation)
        sum += contribution
    }
    let score = rankingNumber(candidate["score"]) ?? .nan
    #expect((0...1).contains(score), "\(candidate)", sourceLocation: sourceLocation)
    // The score is the sum rounded to 4 decimals, as are the text fit and its contribution: three
    // roundings (0.00005 + 0.3 × 0.00005 + 0.00005) bound the difference; the other fits are exact.
    #expect(abs(score - sum) <= 0.000115 + 1e-9, "score \(score) vs sum of contributions \(sum): \(candidate)", sourceLocation: sourceLocation)
}
