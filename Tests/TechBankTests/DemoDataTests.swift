import Foundation
import Postgres
import TechBank
import Testing
import TechBankTestSupport
import TestSupport

@Suite("Demo data (techbank seed-demo)")
struct DemoDataTests {
    @Test func seedsABilingualRegistryReadyForSearchAndMatching() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let summary = try await DemoData.seed(pool)
            #expect(summary.subParks == 5 && summary.institutes == 20 && summary.technologies == 200 && summary.demands == 50)

            let counts = try await pool.withConnection { connection in
                try await connection.query(
                    """
                    SELECT (SELECT count(*) FROM techbank.organizations WHERE kind = 'sub_park'),
                           (SELECT count(*) FROM techbank.organizations WHERE kind = 'institute'),
                           (SELECT count(*) FROM techbank.technologies),
                           (SELECT count(*) FROM techbank.technologies WHERE status IN ('listed', 'licensed')),
                           (SELECT count(DISTINCT field) FROM techbank.technologies WHERE status = 'listed'),
                           (SELECT count(*) FROM techbank.fields),
                           (SELECT count(*) FROM techbank.technologies WHERE title ~ '[A-Za-z]' AND title ~ '[\\u4e00-\\u9fff]'),
                           (SELECT count(*) FROM techbank.demands WHERE status = 'open'),
                           (SELECT count(*) FROM techbank.organizations i WHERE kind = 'institute' AND sub_park_id IS NOT NULL)
                    """)[0]
            }
            #expect(try counts.decode(Int.self, at: 0) == 5)
            #expect(try counts.decode(Int.self, at: 1) == 20)
            #expect(try counts.decode(Int.self, at: 2) == 200)
            #expect(try counts.decode(Int.self, at: 3) == summary.listed, "listed, or licensed by a demo deal")
            #expect(summary.listed >= 150)
            #expect(try counts.decode(Int.self, at: 4) == counts.decode(Int.self, at: 5), "every field has listed technologies")
            #expect(try counts.decode(Int.self, at: 6) == 200, "every title has English and Chinese")
            #expect(try counts.decode(Int.self, at: 7) == 50)
            #expect(try counts.decode(Int.self, at: 8) > 0, "institutes belong to sub-parks")

            // The printed keys work, one per kind of organization a user would try.
            let organizations = Organizations(pool: pool)
            var kinds: Set<OrganizationKind> = []
            for (_, kind, secret) in summary.keys {
                let identity = try #require(try await organizations.authenticate(secret: secret))
                #expect(identity.kind == kind)
                kinds.insert(kind)
            }
            // The test database has no operator yet, so seeding creates it and prints its key too.
            #expect(kinds == [.operator, .subPark, .committee, .broker, .institute, .enterprise])
            let committeeKey = try #require(summary.keys.first { $0.kind == .committee })
            let committee = try #require(try await organizations.authenticate(secret: committeeKey.secret))

            // Search works at once in both languages...
            var query = TechnologyQuery()
            query.text = "锂电池"
            let chinese = try await Technologies(pool: pool).search(query, visibleTo: committee, limit: 50, offset: 0).items
            #expect(!chinese.isEmpty && chinese.allSatisfy { $0.title.contains("锂电池") })
            query.text = "lithium battery"
            let english = try await Technologies(pool: pool).search(query, visibleTo: committee, limit: 50, offset: 0).items
            #expect(Set(english.map(\.id)) == Set(chinese.map(\.id)))

            // A deal in every state, its money in a balanced ledger.
            let deals = Deals(pool: pool)
            #expect(Set(summary.deals.keys) == Set(DealStatus.allCases))
            for (state, id) in summary.deals {
                #expect(try await deals.get(id)?.status == state)
            }
            let unbalanced = try await pool.withConnection { connection in
                try await connection.query(
                    """
                    SELECT currency FROM ledger.accounts GROUP BY currency
                    HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
                    """)
            }
            #expect(unbalanced.isEmpty)
            let registrations = try await pool.withConnection { try await $0.query("SELECT count(*) FROM techbank.registrations")[0].decode(Int.self, at: 0) }
            #expect(registrations == 5, "signed, active, completed, disputed and terminated deals were signed")

            // ...and every demand has candidates, the best in its own field.
            let demands = Demands(pool: pool)
            let open = try await demands.search(DemandQuery(), visibleTo: committee, limit: 50, offset: 0).items
            #expect(open.count == 50)
            for demand in open {
                let best = try #require(try await demands.candidates(for: demand, limit: 1, offset: 0).items.first, "\(demand.title)")
                #expect(best.field == demand.field, "\(demand.title): best candidate \(best.title)")
            }
        }
    }

    @Test func seedingTwiceIsRefusedAndAddsNothing() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            _ = try await DemoData.seed(pool)
            await #expect(throws: TechBankError.self) { try await DemoData.seed(pool) }
            let technologies = try await pool.withConnection { try await $0.query("SELECT count(*) FROM techbank.technologies")[0].decode(Int.self, at: 0) }
            #expect(technologies == 200)
        }
    }
}
