import Foundation
import Postgres
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The operator key every server in these tests is started with.
let operatorKey = "tbk_ops_test_operator_key_0123456789"

/// `techbank serve` on its own embedded cluster under `dataDir`, on a free port. Restartable: each
/// `start` launches a new process (and a new port), its output in `<dataDir>-serve-<n>.log`; `crash`
/// kills it and the cluster with SIGKILL.
///
/// A client stays open until the next `start` or `stop`, when no writer uses it any more:
/// FoundationNetworking traps on a task created in an invalidated session.
final class ServerUnderTest: Sendable {
    let dataDir: String
    private let running = Mutex<(process: ChildProcess, client: HTTPClient)?>(nil)
    private let lastClient = Mutex<HTTPClient?>(nil)
    private let starts = Mutex(0)

    init(dataDir: String) { self.dataDir = dataDir }

    /// The client of the running server.
    var client: HTTPClient {
        get throws {
            guard let client = running.withLock({ $0?.client }) else { throw HarnessError("the server is not running") }
            return client
        }
    }

    /// Starts `techbank serve` and waits until `/readyz` answers 200 (at most 120 s).
    func start() async throws {
        let port = try freePort()
        let number = starts.withLock { $0 += 1; return $0 }
        let process = try ChildProcess.launch(
            [try await TechBankExecutable.path, "serve", "--data-dir", dataDir, "--host", "127.0.0.1", "--port", "\(port)"],
            environment: ["TECHBANK_ADMIN_KEY": operatorKey, "LOG_LEVEL": "warning"],
            outputPath: dataDir + "-serve-\(number).log")
        let client = HTTPClient(baseURL: "http://127.0.0.1:\(port)")
        running.withLock { $0 = (process, client) }
        lastClient.withLock { previous in previous?.close(); previous = client }
        for _ in 0..<1_200 {
            if let code = try process.exitCodeIfEnded() {
                running.withLock { $0 = nil }
                throw HarnessError("techbank serve exited with \(code) before it was ready:\n\(process.output.suffix(3_000))")
            }
            if case .answered(200, _) = await client.send("GET", "/readyz") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("techbank serve was not ready after 120 s:\n\(process.output.suffix(3_000))")
    }

    /// Stops the server with SIGTERM (it stops its cluster) and waits for it to exit.
    func stop() async throws {
        guard let (process, client) = running.withLock({ current in defer { current = nil }; return current }) else { return }
        lastClient.withLock { $0 = nil }
        client.close()
        kill(process.pid, SIGTERM)
        let code = try await process.waitForExit(limitSeconds: 90)
        guard code == 0 else { throw HarnessError("techbank serve exited with \(code) on SIGTERM:\n\(process.output.suffix(3_000))") }
    }

    /// Kills the server and every process of its cluster with SIGKILL, in the order given.
    func crash(clusterFirst: Bool) throws {
        if clusterFirst {
            try killCluster()
            killServer()
        } else {
            killServer()
            try killCluster()
        }
    }

    /// Kills whatever runs, without asking; for clean-up after a failed test.
    func killEverything() {
        killServer()
        do { try killCluster() } catch { print("warning: \(error)") }
    }

    private func killServer() {
        guard let process = running.withLock({ current in defer { current = nil }; return current?.process }) else { return }
        process.killAndReap()
    }

    /// The postmaster named in `postmaster.pid` and its children (stopped first, so that it
    /// cannot start another child between listing and killing them).
    private func killCluster() throws {
        let pidFile = dataDir + "/data/postmaster.pid"
        guard let contents = FileManager.default.contents(atPath: pidFile),
              let postmaster = String(decoding: contents, as: UTF8.self).split(separator: "\n").first.flatMap({ pid_t($0) }),
              kill(postmaster, 0) == 0 else { return }
        kill(postmaster, SIGSTOP)
        for child in try childProcesses(of: postmaster) { kill(child, SIGKILL) }
        kill(postmaster, SIGKILL)
    }
}

/// The processes whose parent is `parent`, from /proc.
func childProcesses(of parent: pid_t) throws -> [pid_t] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { entry -> pid_t? in
        guard let pid = pid_t(entry),
              let stat = FileManager.default.contents(atPath: "/proc/\(entry)/stat").map({ String(decoding: $0, as: UTF8.self) }),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state, then the parent's pid.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
    }
}

/// A TCP port nothing listens on right now (bound to port 0 and released).
func freePort() throws -> Int {
    let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socketFD >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(socketFD) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) == 0 && getsockname(socketFD, $0, &length) == 0 }
    }
    guard bound else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}
