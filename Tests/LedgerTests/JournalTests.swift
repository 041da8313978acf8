import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// The hash-chained journal records every change and `Journal.verify()` finds any tampering.
@Suite("Journal")
struct JournalTests {
    /// Activity from several connections at once, so that several shards get entries.
    private func activity(_ bank: Bank) async throws {
        let funding = try await bank.open(), shop = try await bank.open()
        let wallet = try await bank.open(debitsMustNotExceedCredits: true)
        try await bank.post(funding, wallet, 100_000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for i in 0..<6 {
                        switch (task + i) % 3 {
                        case 0: try await bank.post(wallet, shop, Int64(10 + i))
                        case 1:
                            let hold = try await bank.hold(wallet, shop, 50, timeout: 3_600)
                            try await bank.postPending(hold.id, amount: Int64(1 + i))
                        default:
                            let hold = try await bank.hold(shop, funding, 5)
                            try await bank.void(hold.id)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func everyChangeIsJournaledAndTheJournalVerifies() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let empty = try await bank.journal.verify()
            #expect(empty.isIntact && empty.entriesChecked == 0)
            try await activity(bank)
            let a = try await bank.open(), b = try await bank.open()
            try await bank.hold(a, b, 9, timeout: 1)
            #expect(try await bank.ledger.closeAccount(a))
            #expect(try await bank.ledger.closeAccount(a))  // a no-op: journals nothing
            try await bank.journal.append(eventType: "note", subjectID: nil, payload: JSONB(#"{"text": "hello"}"#))
            try await Task.sleep(for: .milliseconds(1_200))
            #expect(try await bank.ledger.expirePending() == 1)
            let transfers = try await bank.count("SELECT count(*) FROM ledger.transfers")
            let accounts = try await bank.count("SELECT count(*) FROM ledger.accounts")
            let verification = try await bank.journal.verify()
            #expect(verification.isIntact && verification.firstBreak == nil)
            // accounts + transfers + one close + one note + one expiry
            #expect(verification.entriesChecked == accounts + transfers + 3)
            let types = try await bank.sql("SELECT event_type, count(*)::int8 FROM ledger.journal GROUP BY 1 ORDER BY 1")
            var byType: [String: Int64] = [:]
            for row in types { byType[try row.decode(String.self, at: 0)] = try row.decode(Int64.self, at: 1) }
            #expect(byType == ["account_created": Int64(accounts), "account_closed": 1, "note": 1, "pending_expired": 1,
                               "transfer": Int64(transfers)])
        }
    }

    enum Tampering: String, CaseIterable, Sendable {
        case changeOneByteOfAPayload, deleteAnEntryInTheMiddle, deleteTheLastEntry, swapTwoPayloads, rewriteAnEntryWithItsHash
        case deleteTheFirstEntry, deleteTheLastTwoEntries, changeTheTimestampOfAnEntry, appendAnEntryPastTheHead,
             rewriteTheLastEntryWithItsHash
    }

    @Test(arguments: Tampering.allCases)
    func tamperingIsFoundAtTheRightEntry(_ tampering: Tampering) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            try await activity(bank)
            #expect(try await bank.journal.verify().isIntact)
            // the highest-numbered shard with enough entries, so that intact shards come before it
            let shards = try await bank.sql("SELECT shard, count(*)::int8 FROM ledger.journal GROUP BY shard ORDER BY shard")
            var sizes: [(shard: Int16, entries: Int64)] = []
            for row in shards { sizes.append((try row.decode(Int16.self, at: 0), try row.decode(Int64.self, at: 1))) }
            let target = try #require(sizes.last(where: { $0.entries >= 4 }), "shards: \(sizes)")
            let shard = target.shard, last = target.entries
            let expectedSeq: Int64
            let statement: String
            switch tampering {
            case .changeOneByteOfAPayload:
                expectedSeq = 2
                statement = """
                    UPDATE ledger.journal
                       SET payload = jsonb_set(payload, '{id}', to_jsonb(left(payload->>'id', -1)
                                     || CASE WHEN right(payload->>'id', 1) = '0' THEN '1' ELSE '0' END))
                     WHERE shard = $1 AND seq = 2 AND payload ? 'id'
                    """
            case .deleteAnEntryInTheMiddle:
                expectedSeq = 2
                statement = "DELETE FROM ledger.journal WHERE shard = $1 AND seq = 2"
            case .deleteTheLastEntry:
                expectedSeq = last
                statement = "DELETE FROM ledger.journal WHERE shard = $1 AND seq = \(last)"
            case .swapTwoPayloads:
                expectedSeq = 2
                statement = """
                    UPDATE ledger.journal j SET payload = o.payload FROM ledger.journal o
                     WHERE j.shard = $1 AND o.shard = $1 AND ((j.seq = 2 AND o.seq = 3) OR (j.seq = 3 AND o.seq = 2))
                    """
            case .rewriteAnEntryWithItsHash:
                // a consistent forgery of entry 2 alone: entry 3 no longer links to it
                expectedSeq = 3
                statement = """
                    UPDATE ledger.journal
                       SET payload = payload || '{"forged": true}',
                           hash = sha256(prev_hash || ledger.journal_canonical(shard, seq, event_type, subject_id, created_at,
                                                                               payload || '{"forged": true}', actor_id, key_id, request_id))
                     WHERE shard = $1 AND seq = 2
                    """
            case .rewriteTheLastEntryWithItsHash:
                // consistent in itself, but no longer the entry the head records
                expectedSeq = last
                statement = """
                    UPDATE ledger.journal
                       SET payload = payload || '{"forged": true}',
                           hash = sha256(prev_hash || ledger.journal_canonical(shard, seq, event_type, subject_id, created_at,
                                                                               payload || '{"forged": true}', actor_id, key_id, request_id))
                     WHERE shard = $1 AND seq = \(last)
                    """
            case .deleteTheFirstEntry:
                expectedSeq = 1
                statement = "DELETE FROM ledger.journal WHERE shard = $1 AND seq = 1"
            case .deleteTheLastTwoEntries:
                expectedSeq = last - 1
                statement = "DELETE FROM ledger.journal WHERE shard = $1 AND seq >= \(last - 1)"
            case .changeTheTimestampOfAnEntry:
                expectedSeq = 3
                statement = "UPDATE ledger.journal SET created_at = created_at + interval '1 microsecond' WHERE shard = $1 AND seq = 3"
            case .appendAnEntryPastTheHead:
                // a well-formed entry chained to the last one, but the head was not moved
                expectedSeq = last + 1
                statement = """
                    INSERT INTO ledger.journal (shard, seq, event_type, subject_id, payload, created_at, prev_hash, hash)
                    SELECT shard, seq + 1, 'note', NULL, '{"forged": true}', created_at, hash,
                           sha256(hash || ledger.journal_canonical(shard, seq + 1, 'note', NULL, created_at, '{"forged": true}', NULL, NULL, NULL))
                      FROM ledger.journal WHERE shard = $1 AND seq = \(last)
                    """
            }
            let changed = try await pool.withConnection { connection in
                // as the superuser, with triggers (the append-only guards) disabled
                try await connection.query("SET session_replication_role = replica")
                do {
                    let result = try await connection.query(statement, [shard])
                    try await connection.query("RESET session_replication_role")
                    return result.affectedRows
                } catch {
                    _ = try? await connection.query("RESET session_replication_role")
                    throw error
                }
            }
            #expect(changed == (tampering == .swapTwoPayloads || tampering == .deleteTheLastTwoEntries ? 2 : 1))
            let verification = try await bank.journal.verify()
            #expect(!verification.isIntact)
            let found = try #require(verification.firstBreak)
            #expect(found.shard == shard, "\(found), shards: \(sizes)")
            #expect(found.seq == expectedSeq, "\(found)")
        }
    }
}
