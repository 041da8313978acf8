import Foundation

/// `Accept` (RFC 9110 §12.5.1) as the server reads it: comma-separated media ranges, each with an
/// optional `q` (other parameters ignored; q=0 means "not acceptable").
enum AcceptHeader {
    /// The highest q that `accept` gives any of `ranges` (lower-case), or 0 when it gives none.
    static func quality(_ accept: String, of ranges: Set<String>) -> Double {
        accept.lowercased().split(separator: ",").reduce(0) { best, range in
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = parts.first, ranges.contains(type) else { return best }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return max(best, q)
        }
    }
}
