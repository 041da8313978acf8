import Foundation
import TestSupport
import Testing

/// `techbank backup` while writers post transfers, then `techbank restore` into a new directory
/// and `techbank serve` on it: everything acknowledged before the backup began is there.
@Suite("Backups", .serialized)
struct BackupTests {
    @Test("a backup taken under load restores every transfer acknowledged before it began, balanced and verifiable")
    func backupUnderLoadRestores() async throws {
        let work = NSTemporaryDirectory() + "techbank-backup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        let original = ServerUnderTest(dataDir: work + "/original")
        let restored = ServerUnderTest(dataDir: work + "/restored")
        defer {
            original.killEverything()
            restored.killEverything()
            removeIfPresent(work)
        }
        try await original.start()
        let tenant = try await Tenant.create(on: try original.client, accounts: 6)
        let (log, stop) = (TransferLog(), StopFlag())
        let writing = Task { [client = try original.client] in
            await runWriters(8, tenant: tenant, client: client, log: log, seed: UInt64.random(in: 1...UInt64.max), stop: stop)
        }
        try await Task.sleep(for: .seconds(1))
        let beforeBackup = await log.acknowledged
        // An older backup under the same name, which --force replaces.
        #expect(FileManager.default.createFile(atPath: work + "/cluster.tar.gz", contents: Data("yesterday's backup".utf8)))
        let backup = try await techbank(["backup", "--data-dir", original.dataDir, "--to", work + "/cluster.tar.gz", "--force"])
        stop.set()
        await writing.value
        try await original.stop()
        print("backup under load: \(beforeBackup.count) transfers acknowledged before it, \(await log.acknowledged.count) by the end; \(backup.output.split(separator: "\n").last ?? "")")
        try #require(backup.exitCode == 0, "\(backup.output)")
        let (inDoubt, conflicts) = (await log.inDoubt, await log.conflicts)
        #expect(inDoubt.isEmpty && conflicts.isEmpty, "\(inDoubt.keys) \(conflicts)")

        // With no server running, backup starts the cluster itself and stops it again.
        let offline = try await techbank(["backup", "--data-dir", original.dataDir, "--to", work + "/offline.tar.gz"])
        #expect(offline.exitCode == 0 && offline.output.contains("Backed up"), "\(offline.output)")
        #expect(!FileManager.default.fileExists(atPath: original.dataDir + "/data/postmaster.pid"), "the cluster was stopped")

        let restore = try await techbank(["restore", "--from", work + "/cluster.tar.gz", "--data-dir", restored.dataDir])
        try #require(restore.exitCode == 0, "\(restore.output)")
        try await restored.start()
        #expect(try await LedgerChecks.problems(dataDir: restored.dataDir, acknowledged: beforeBackup) == [])
        // The check does find a transfer that is not there.
        let neverSent = TransferRequest(id: UUID().uuidString.lowercased(), debit: tenant.accounts[0], credit: tenant.accounts[1], amount: 1)
        let missing = try await LedgerChecks.problems(dataDir: restored.dataDir, acknowledged: [neverSent.id: neverSent])
        #expect(missing.count == 1 && missing[0].hasPrefix("lost: \(neverSent.id)"), "\(missing)")
        for request in beforeBackup.values.prefix(20) {
            // Through the API as well: the restored roles and grants let the server read them.
            let shown = try await restored.client.require(200, "GET", "/v1/transfers/\(request.id)", key: tenant.key)
            #expect(request.matches(shown), "\(shown)")
        }
        #expect(try await LedgerChecks.auditVerify(dataDir: restored.dataDir).contains("OK:"))
        try await restored.stop()
    }

    @Test("a backup refuses an existing file, a directory and a missing directory, before touching the database")
    func backupRefusesBadTargets() async throws {
        let work = NSTemporaryDirectory() + "techbank-backup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { removeIfPresent(work) }
        #expect(FileManager.default.createFile(atPath: work + "/taken.tar.gz", contents: Data("an earlier backup".utf8)))
        let cases = [
            (work + "/taken.tar.gz", "already exists; pass --force"),
            (work, "is a directory"),
            (work + "/missing/backup.tar.gz", "does not exist"),
        ]
        for (file, message) in cases {
            let result = try await techbank(["backup", "--data-dir", work + "/cluster", "--to", file])
            #expect(result.exitCode == 1 && result.output.contains(message), "\(file): \(result.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: work + "/cluster"), "no cluster was created")
        #expect(FileManager.default.contents(atPath: work + "/taken.tar.gz") == Data("an earlier backup".utf8))
    }

    @Test("a failed backup leaves the file it was to replace as it was, and nothing half-written beside it")
    func aFailedBackupLeavesNoPartialFile() async throws {
        let work = NSTemporaryDirectory() + "techbank-backup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { removeIfPresent(work) }
        #expect(FileManager.default.createFile(atPath: work + "/kept.tar.gz", contents: Data("an earlier backup".utf8)))
        let result = try await techbank(["backup", "--database-url", "host=\(work) port=1 user=postgres", "--to", work + "/kept.tar.gz", "--force"])
        #expect(result.exitCode == 1 && result.output.contains("pg_basebackup failed"), "\(result.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work) == ["kept.tar.gz"])
        #expect(FileManager.default.contents(atPath: work + "/kept.tar.gz") == Data("an earlier backup".utf8))
    }

    @Test("a restore refuses a missing file, a file that is not a backup, and a directory holding a cluster")
    func restoreRefusesBadInput() async throws {
        let work = NSTemporaryDirectory() + "techbank-backup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work + "/existing/data", withIntermediateDirectories: true)
        defer { removeIfPresent(work) }
        #expect(FileManager.default.createFile(atPath: work + "/notes.txt", contents: Data("not a backup".utf8)))
        let cases = [
            (work + "/missing.tar.gz", work + "/new", "no backup file at"),
            (work + "/notes.txt", work + "/new", "is not a readable backup"),
            (work + "/notes.txt", work + "/existing", "already holds a cluster"),
        ]
        for (file, directory, message) in cases {
            let result = try await techbank(["restore", "--from", file, "--data-dir", directory])
            #expect(result.exitCode == 1 && result.output.contains(message), "\(file) → \(directory): \(result.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: work + "/new"), "a failed restore leaves no half-built directory")
    }

    private func techbank(_ arguments: [String]) async throws -> (exitCode: Int32, output: String) {
        try await ChildProcess.run([try await TechBankExecutable.path] + arguments, environment: ["LOG_LEVEL": "warning"])
    }
}
