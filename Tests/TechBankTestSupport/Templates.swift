import TechBank
import TestSupport

extension TestTemplate {
    /// The whole schema, the ledger's and TechBank's, built through their numbered migrations.
    public static let techbank = TestTemplate(name: "techbank") { try await Schema.migrate($0) }
}
