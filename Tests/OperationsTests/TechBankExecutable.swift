import Foundation
import TestSupport

/// The real `techbank` executable these tests run. `swift test` builds every product of the
/// package, so it normally sits next to the test bundle; if it does not (a test binary run on its
/// own), it is built once with `swift build --product techbank`.
enum TechBankExecutable {
    static var path: String {
        get async throws { try await located.value }
    }

    private static let located = Task { () async throws -> String in
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let besideTests = testBinary.deletingLastPathComponent().appendingPathComponent("techbank").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let build = try await ChildProcess.run(["/usr/bin/env", "swift", "build", "--package-path", packageRoot, "--product", "techbank"])
        guard build.exitCode == 0 else { throw HarnessError("swift build --product techbank failed:\n\(build.output.suffix(3_000))") }
        let bin = try await ChildProcess.run(["/usr/bin/env", "swift", "build", "--package-path", packageRoot, "--show-bin-path"])
        let built = (bin.output.split(separator: "\n").last.map(String.init) ?? "") + "/techbank"
        guard bin.exitCode == 0, FileManager.default.isExecutableFile(atPath: built) else {
            throw HarnessError("no techbank executable after building it (bin path: \(bin.output))")
        }
        return built
    }
}
