import Foundation

/// SplitMix64: small, fast and seedable, so a random test run replays exactly from its seed.
/// Every random test prints its seed and takes it back from an environment variable.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The seed in the environment variable `variable` (decimal, or hexadecimal after `0x`), or
    /// `fallback` if it is unset (a random one if `fallback` is nil).
    public static func seed(from variable: String, fallback: UInt64? = nil) -> UInt64 {
        let text = ProcessInfo.processInfo.environment[variable]?.trimmingCharacters(in: .whitespaces)
        let given = text.flatMap { $0.hasPrefix("0x") ? UInt64($0.dropFirst(2), radix: 16) : UInt64($0) }
        return given ?? fallback ?? UInt64.random(in: 0...UInt64.max)
    }
}
