import Foundation
import HTTPTypes
import Ledger
import Postgres
import Synchronization
import TechBank
import Testing
import TestSupport

/// Reads from a real hot standby (a streaming replica made with `pg_basebackup`): the committee
/// reports, the searches, the sub-parks' activity and the audit log come from it with their
/// `Data-Age`, writes stay on the primary, and a standby that lags says so.
@Suite("Reads from a hot standby")
struct ReadReplicaTests {
    /// The read-only routes served from the read pool.
    static func readRoutes(size: Int, subPark: String) -> [String] {
        ["/v1/reports/deals", "/v1/reports/transfers?group_by=currency", "/v1/reports/transfers?drill=currency:CNY",
         "/v1/technologies", "/v1/technologies?q=beamforming", "/v1/demands", "/v1/sub-parks/\(subPark)/activity",
         "/v1/audit/events", "/v1/audit/events/0", "/v1/audit/checkpoint", "/v1/audit/public-key",
         "/v1/audit/proofs/inclusion?seq=0&size=\(size)", "/v1/audit/proofs/consistency?from=1&to=\(size)"]
    }

    @Test("reports, searches, activity and the audit log come from the standby with Data-Age, under each caller's rules, the same figures as the primary once it caught up; writes stay on the primary; a lagging standby's Data-Age grows")
    func readsFromAStandby() async throws {
        let primary = try ThrowawayCluster(port: 5440)
        defer { primary.destroy() }
        try await primary.start()
        let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: primary.conninfo), logger: TestDatabase.logger)
        defer { Task { await pool.close() } }
        try await Schema.migrate(pool)
        let standby = try await primary.startStandby(port: 5441)
        defer { standby.destroy() }

        /// Waits until the standby has replayed everything committed (and numbered) on the primary.
        @Sendable func caughtUp() async throws {
            _ = try await AuditLog(pool: pool).sequence()  // as the server's own loop does every 250 ms
            let target = try await pool.withConnection { try await $0.query("SELECT pg_current_wal_lsn()::text")[0].decode(String.self, at: 0) }
            try await onStandby { connection in
                for _ in 0..<200 {
                    if try await connection.query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", [target])[0].decode(Bool.self, at: 0) { return }
                    try await Task.sleep(for: .milliseconds(50))
                }
                Issue.record("the standby did not catch up")
            }
        }
        @Sendable func onStandby(_ body: (PostgresConnection) async throws -> Void) async throws {
            let connection = try await PostgresConnection.connect(conninfo: standby.cluster.conninfo(database: "postgres"),
                                                                  statementTimeoutMilliseconds: 60_000, threadPool: .singleton)
            defer { connection.close() }
            try await body(connection)
        }

        let figures = Mutex<[String: String]>([:])
        try await withAPI(on: pool, readConninfo: standby.conninfo) { api in
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let park = try await api.createOrganization("Park", kind: "sub_park")
            let lab = try await api.createOrganization("Lab", kind: "institute", subParkID: park.id)
            let registered = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody())
            #expect(registered.status == .created)
            let technologyID = try #require(registered.json["id"].string)
            let outsider = try await api.createOrganization("Outsider", kind: "enterprise")
            let payer = try await api.createOrganization("Payer", kind: "enterprise")
            let payee = try await api.createOrganization("Payee", kind: "enterprise")
            let from = try await api.createAccount(for: payer, funded: 1_000)
            let to = try await api.createAccount(for: payee)
            let write = try await api.transfer(from, to, 250, key: payer.key)
            #expect(write.status == .created && write.headers[.dataAge] == nil, "writes are the primary's: \(write)")

            try await caughtUp()
            let size = Int(try #require(try await api.call(.get, "/v1/audit/checkpoint", key: committee.key, headers: [.accept: "application/json"]).json["size"].int))
            #expect(size == (try await AuditLog(pool: pool).size()), "the standby's log is the primary's")
            for route in Self.readRoutes(size: size, subPark: park.id) {
                let response = try await api.call(.get, route, key: committee.key)
                #expect(response.status == .ok, "\(route): \(response)")
                #expect(response.headers[.dataAge] == "0", "\(route), caught up: \(response.headers)")
                if !route.contains("checkpoint") { figures.withLock { $0[route] = String(decoding: response.body, as: UTF8.self) } }
            }

            let found = try await api.call(.get, "/v1/technologies?q=beamforming", key: committee.key)
            #expect(found.json["data"].array.count == 1, "the standby's search finds the technology registered on the primary: \(found)")

            // A tenant reads the standby under the same rules as the primary: the lab's unlisted
            // technology, the committee's reports, another sub-park's activity, the lab's events.
            let search = try await api.call(.get, "/v1/technologies?q=beamforming", key: outsider.key)
            #expect(search.status == .ok && search.json["data"].array.isEmpty && search.headers[.dataAge] == "0", "\(search)")
            expectProblem(try await api.call(.get, "/v1/reports/deals", key: outsider.key), .forbidden, "forbidden")
            expectProblem(try await api.call(.get, "/v1/sub-parks/\(park.id)/activity", key: outsider.key), .notFound, "not_found")
            let events = try await api.call(.get, "/v1/audit/events?limit=200", key: outsider.key)
            #expect(events.status == .ok && !events.json["data"].array.isEmpty)
            #expect(events.json["data"].array.allSatisfy { $0["subject_id"].string != technologyID && $0["subject_id"].string != lab.id },
                    "an outsider reads only its own events from the standby")

            // The standby stops replaying: its reports miss the newest transfer, and say how old they are.
            try await onStandby { _ = try await $0.query("SELECT pg_wal_replay_pause()") }
            #expect(try await api.transfer(from, to, 100, key: payer.key).status == .created)
            try await Task.sleep(for: .milliseconds(1_500))
            let stale = try await api.call(.get, "/v1/reports/transfers?group_by=currency", key: committee.key)
            #expect(stale.status == .ok && Int(stale.headers[.dataAge] ?? "") ?? 0 >= 1, "a lagging standby: \(stale.headers)")
            #expect(String(decoding: stale.body, as: UTF8.self) == figures.withLock { $0["/v1/reports/transfers?group_by=currency"] })
            try await onStandby { _ = try await $0.query("SELECT pg_wal_replay_resume()") }
            try await caughtUp()
            try await Task.sleep(for: .milliseconds(300))  // the lag is measured at most every 250 ms
            let fresh = try await api.call(.get, "/v1/reports/transfers?group_by=currency", key: committee.key)
            #expect(fresh.headers[.dataAge] == "0" && fresh.json["groups"][0]["count"].int == (stale.json["groups"][0]["count"].int ?? 0) + 1)
            figures.withLock { $0["fresh"] = String(decoding: fresh.body, as: UTF8.self) }
        }

        // The same reads from an app without a standby: the same figures, and no Data-Age.
        try await withAPI(on: pool) { api in
            let committee = try #require(try await pool.withConnection { connection in
                try await connection.query("SELECT id FROM techbank.organizations WHERE name = 'Committee'")
            }.first.map { try $0.decode(UUID.self, at: 0) })
            let key = try await Organizations(pool: pool).issueKey(for: committee, label: "primary").secret
            let response = try await api.call(.get, "/v1/reports/transfers?group_by=currency", key: key)
            #expect(response.status == .ok && response.headers[.dataAge] == nil)
            #expect(String(decoding: response.body, as: UTF8.self) == figures.withLock { $0["fresh"] })
        }
    }
}

extension HTTPField.Name {
    static let dataAge = Self("Data-Age")!
}
