import Foundation
import Postgres
import TestSupport

/// Checks of the ledger in an embedded cluster, read with SQL as its superuser while the server runs.
enum LedgerChecks {
    /// What is wrong with the ledger: acknowledged transfers missing or with other fields,
    /// debits and credits that do not balance, accounts whose totals are not their transfers'.
    /// Empty when all is well.
    static func problems(dataDir: String, acknowledged: [String: TransferRequest]) async throws -> [String] {
        let cluster = try EmbeddedPostgres(options: EmbeddedPostgres.Options(directory: dataDir))
        let connection = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 60_000, threadPool: .singleton)
        defer { connection.close() }
        var problems = try await lost(acknowledged, connection)
        let totals = try await connection.query("""
            SELECT sum(debits_posted)::bigint, sum(credits_posted)::bigint, sum(debits_pending)::bigint, sum(credits_pending)::bigint
            FROM ledger.accounts
            """)[0]
        let (debits, credits) = (try totals.decode(Int64.self, at: 0), try totals.decode(Int64.self, at: 1))
        let (debitsPending, creditsPending) = (try totals.decode(Int64.self, at: 2), try totals.decode(Int64.self, at: 3))
        if debits != credits || debitsPending != creditsPending {
            problems.append("debits \(debits) ≠ credits \(credits) (pending \(debitsPending) / \(creditsPending))")
        }
        let unbalanced = try await connection.query("""
            SELECT a.id::text FROM ledger.accounts a
            WHERE a.debits_posted <> (SELECT coalesce(sum(t.amount), 0) FROM ledger.transfers t
                                      WHERE t.debit_account_id = a.id AND t.kind IN ('posted', 'post_pending'))
               OR a.credits_posted <> (SELECT coalesce(sum(t.amount), 0) FROM ledger.transfers t
                                       WHERE t.credit_account_id = a.id AND t.kind IN ('posted', 'post_pending'))
            """)
        for row in unbalanced { problems.append("account \(try row.decode(String.self, at: 0)): posted totals differ from its transfers") }
        return problems
    }

    /// The acknowledged transfers that are not in the ledger as they were acknowledged.
    static func lost(_ acknowledged: [String: TransferRequest], _ connection: PostgresConnection) async throws -> [String] {
        let rows = try await connection.query(
            "SELECT id::text, debit_account_id::text, credit_account_id::text, amount, kind FROM ledger.transfers")
        var stored: [String: TransferRequest] = [:]
        for row in rows where try row.decode(String.self, at: 4) == "posted" {
            let transfer = TransferRequest(id: try row.decode(String.self, at: 0), debit: try row.decode(String.self, at: 1),
                                           credit: try row.decode(String.self, at: 2), amount: try row.decode(Int64.self, at: 3))
            stored[transfer.id] = transfer
        }
        return acknowledged.values.filter { stored[$0.id] != $0 }.map { "lost: \($0.id) (stored: \(String(describing: stored[$0.id])))" }
    }

    /// Runs `techbank audit verify` on the cluster; returns its output, or throws it if it fails.
    static func auditVerify(dataDir: String) async throws -> String {
        let result = try await ChildProcess.run([try await TechBankExecutable.path, "audit", "verify", "--data-dir", dataDir],
                                                environment: ["LOG_LEVEL": "warning"])
        guard result.exitCode == 0, result.output.contains("OK:") else {
            throw HarnessError("techbank audit verify failed (exit \(result.exitCode)):\n\(result.output.suffix(2_000))")
        }
        return result.output
    }
}
