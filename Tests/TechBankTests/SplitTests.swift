import Foundation
import TechBank
import Testing
import TestSupport

/// The split rule of every payment (`Split`): basis points of minor units, rounded down, parts
/// summing to the whole. Random cases are replayable: a failure names its seed; run it again with
/// `SPLIT_PROPERTY_SEED=<seed>`, and longer with `SPLIT_PROPERTY_CASES=<n>`.
@Suite("Split rule")
struct SplitTests {
    /// 2^53: the largest amount the API accepts.
    static let maxAmount: Int64 = 1 << 53

    /// `floor(amount × bp / 10000)` computed another way than `Split.part`: with
    /// amount = q·10000 + r, it is q·bp + floor(r·bp / 10000), which never overflows.
    static func expectedPart(_ amount: Int64, _ bp: Int) -> Int64 {
        let (q, r) = amount.quotientAndRemainder(dividingBy: 10_000)
        return q * Int64(bp) + (r * Int64(bp)) / 10_000
    }

    // MARK: Fixed cases

    @Test func partIsFloorOfBasisPoints() {
        #expect(Split.part(of: 0, bp: 10_000) == 0)
        #expect(Split.part(of: 1, bp: 9_999) == 0)
        #expect(Split.part(of: 1, bp: 10_000) == 1)
        #expect(Split.part(of: 3, bp: 3_333) == 0)
        #expect(Split.part(of: 10_000, bp: 1) == 1)
        #expect(Split.part(of: 9_999, bp: 1) == 0)
        #expect(Split.part(of: 19_999, bp: 5_000) == 9_999)
        #expect(Split.part(of: 1_000_000, bp: 250) == 25_000)
        #expect(Split.part(of: 1_000_001, bp: 250) == 25_000)
        #expect(Split.part(of: Self.maxAmount, bp: 10_000) == Self.maxAmount)
        #expect(Split.part(of: Self.maxAmount, bp: 1) == Self.maxAmount / 10_000)
    }

    @Test func noOverflowNearInt64Max() {
        for amount in [Int64.max, Int64.max - 1, Int64.max - 9_999, Int64.max / 2, Int64.max / 10_000 * 10_000] {
            #expect(Split.part(of: amount, bp: 0) == 0)
            #expect(Split.part(of: amount, bp: 10_000) == amount)
            #expect(Split.part(of: amount, bp: 5_000) == amount / 2)
            for bp in [1, 2, 3_333, 3_334, 9_999] {
                #expect(Split.part(of: amount, bp: bp) == Self.expectedPart(amount, bp), "amount \(amount) bp \(bp)")
            }
            let fees = Split.fees(of: amount, brokerBP: 10_000, subParkBP: 0)
            #expect(fees.broker == amount && fees.subPark == 0 && fees.seller == 0)
            let split = Split.fees(of: amount, brokerBP: 3_333, subParkBP: 6_667)
            #expect(split.broker + split.subPark <= amount && split.seller >= 0 && split.seller <= 1)
            let inventors = Split.inventors(of: amount, instituteBP: 5_000, shares: [3_333, 3_333, 3_334])
            #expect(inventors.inventors.allSatisfy { $0 >= 0 })
            // No overflow: the sum fits and the institute keeps at least half.
            let (sum, overflow) = inventors.inventors.reduce((Int64(0), false)) { acc, value in
                let (s, o) = acc.0.addingReportingOverflow(value)
                return (s, acc.1 || o)
            }
            #expect(!overflow && inventors.institute + sum == amount && inventors.institute >= amount - amount / 2)
        }
    }

    @Test func feesOfTheDealTestsAmounts() {
        // 1000 bp broker, 200 bp sub-park (the HTTP tests' terms).
        let upfront = Split.fees(of: 1_000_001, brokerBP: 1_000, subParkBP: 200)
        #expect(upfront.broker == 100_000 && upfront.subPark == 20_000 && upfront.seller == 880_001)
        let tiny = Split.fees(of: 9, brokerBP: 1_000, subParkBP: 200)
        #expect(tiny.broker == 0 && tiny.subPark == 0 && tiny.seller == 9)
        let ten = Split.fees(of: 10, brokerBP: 1_000, subParkBP: 200)
        #expect(ten.broker == 1 && ten.subPark == 0 && ten.seller == 9)
    }

    @Test func aSingleFenStaysWithTheInstitute() {
        let one = Split.inventors(of: 1, instituteBP: 5_000, shares: [3_333, 3_333, 3_334])
        #expect(one.institute == 1 && one.inventors == [0, 0, 0])
        let zero = Split.inventors(of: 0, instituteBP: 5_000, shares: [3_333, 3_333, 3_334])
        #expect(zero.institute == 0 && zero.inventors == [0, 0, 0])
        // 7 fen: the institute keeps floor(3.5) = 3, the pool of 4 gives each inventor floor(4 × 0.3333) = 1; 1 fen left over.
        let seven = Split.inventors(of: 7, instituteBP: 5_000, shares: [3_333, 3_333, 3_334])
        #expect(seven.institute == 4 && seven.inventors == [1, 1, 1])
        // 60000 fen: the pool of 30000 splits 9999 / 9999 / 10002; nothing left over.
        let even = Split.inventors(of: 60_000, instituteBP: 5_000, shares: [3_333, 3_333, 3_334])
        #expect(even.institute == 30_000 && even.inventors == [9_999, 9_999, 10_002])
        // No inventors: everything stays with the institute.
        let nobody = Split.inventors(of: 12_345, instituteBP: 5_000, shares: [])
        #expect(nobody.institute == 12_345 && nobody.inventors.isEmpty)
    }

    // MARK: Random cases

    @Test func randomAmountsSplitExactly() {
        let environment = ProcessInfo.processInfo.environment
        let seed = SeededGenerator.seed(from: "SPLIT_PROPERTY_SEED")
        let cases = environment["SPLIT_PROPERTY_CASES"].flatMap { Int($0) } ?? 20_000
        print("split property test: seed \(seed), \(cases) cases (replay with SPLIT_PROPERTY_SEED=\(seed))")
        var rng = SeededGenerator(seed: seed)
        var failures = 0
        func check(_ condition: Bool, _ what: @autoclosure () -> String, case index: Int) {
            guard !condition else { return }
            failures += 1
            if failures <= 10 {
                Issue.record(Comment(rawValue: "seed \(seed) (replay with SPLIT_PROPERTY_SEED=\(seed)), case \(index): \(what())"))
            }
        }
        for index in 0..<cases {
            let amount = rng.amount(max: Self.maxAmount)
            let bp = rng.basisPoints()

            // part
            let part = Split.part(of: amount, bp: bp)
            check(part == Self.expectedPart(amount, bp), "part(\(amount), \(bp)) = \(part), expected \(Self.expectedPart(amount, bp))", case: index)
            check(part >= 0 && part <= amount, "part(\(amount), \(bp)) = \(part) outside 0…amount", case: index)
            // floor: part × 10000 ≤ amount × bp < (part + 1) × 10000, checked in 128 bits.
            let product = amount.multipliedFullWidth(by: Int64(bp))
            let low = part.multipliedFullWidth(by: 10_000)
            let high = (part + 1).multipliedFullWidth(by: 10_000)
            check(Self.lessOrEqual(low, product) && Self.less(product, high), "part(\(amount), \(bp)) = \(part) is not the floor", case: index)

            // fees: two random fee rates that together are at most 10000 bp.
            let brokerBP = rng.basisPoints()
            let subParkBP = Int(rng.next() % UInt64(10_001 - brokerBP))
            let fees = Split.fees(of: amount, brokerBP: brokerBP, subParkBP: subParkBP)
            check(fees.broker == Self.expectedPart(amount, brokerBP) && fees.subPark == Self.expectedPart(amount, subParkBP),
                  "fees(\(amount), \(brokerBP), \(subParkBP)) = \(fees) are not floors", case: index)
            check(fees.broker + fees.subPark + fees.seller == amount && fees.seller >= 0,
                  "fees(\(amount), \(brokerBP), \(subParkBP)) = \(fees) do not sum to the amount", case: index)
            // The seller gets the rounding: at least its own floor share.
            check(fees.seller >= Self.expectedPart(amount, 10_000 - brokerBP - subParkBP), "fees(\(amount), \(brokerBP), \(subParkBP)): seller short", case: index)

            // inventors: 1…10 inventors whose shares sum to 10000 (as a technology's must), or random shares summing to less.
            let instituteBP = rng.basisPoints()
            let shares = rng.shares(total: rng.next() % 4 == 0 ? Int(rng.next() % 10_001) : 10_000)
            let split = Split.inventors(of: amount, instituteBP: instituteBP, shares: shares)
            let pool = amount - Self.expectedPart(amount, instituteBP)
            let inventorsSum = split.inventors.reduce(0, +)
            check(split.inventors.count == shares.count, "inventors(\(amount), \(instituteBP), \(shares)): wrong count", case: index)
            check(zip(split.inventors, shares).allSatisfy { $0 == Self.expectedPart(pool, $1) },
                  "inventors(\(amount), \(instituteBP), \(shares)) = \(split.inventors), pool \(pool): not floors of the pool", case: index)
            check(inventorsSum <= pool, "inventors(\(amount), \(instituteBP), \(shares)): \(inventorsSum) exceeds the pool \(pool)", case: index)
            check(split.institute + inventorsSum == amount, "inventors(\(amount), \(instituteBP), \(shares)): parts do not sum to the amount", case: index)
            check(split.institute >= Self.expectedPart(amount, instituteBP),
                  "inventors(\(amount), \(instituteBP), \(shares)): the institute gets less than its \(instituteBP) bp", case: index)
            if shares.reduce(0, +) == 10_000 {
                // Each inventor loses less than one fen to rounding, so the remainder is below the number of inventors.
                check(pool - inventorsSum < Int64(max(shares.count, 1)),
                      "inventors(\(amount), \(instituteBP), \(shares)): remainder \(pool - inventorsSum) too large", case: index)
            }
        }
        if failures > 10 { Issue.record(Comment(rawValue: "seed \(seed): \(failures) failures in all")) }
    }

    static func less(_ a: (high: Int64, low: UInt64), _ b: (high: Int64, low: UInt64)) -> Bool {
        a.high < b.high || (a.high == b.high && a.low < b.low)
    }

    static func lessOrEqual(_ a: (high: Int64, low: UInt64), _ b: (high: Int64, low: UInt64)) -> Bool {
        !less(b, a)
    }
}

/// The split property test's draws, on the shared seeded generator.
private extension SeededGenerator {
    /// 0…max, weighted towards the edges: tiny amounts, amounts near max, round amounts, any.
    mutating func amount(max: Int64) -> Int64 {
        switch next() % 6 {
        case 0: Int64(next() % 20_001)
        case 1: max - Int64(next() % 20_001)
        case 2: Int64(next() % 1_000_000) * [1, 10, 100, 10_000, 1_000_000][Int(next() % 5)]
        case 3: Int64(next() % UInt64(1 << (next() % 54)))
        default: Int64.random(in: 0...max, using: &self)
        }
    }

    /// 0…10000, with 0, 1, 5000, 9999 and 10000 often.
    mutating func basisPoints() -> Int {
        switch next() % 5 {
        case 0: [0, 1, 3_333, 3_334, 5_000, 9_999, 10_000][Int(next() % 7)]
        default: Int(next() % 10_001)
        }
    }

    /// 1…10 shares summing to `total` (each ≥ 0).
    mutating func shares(total: Int) -> [Int] {
        let count = Int(next() % 10) + 1
        var cuts = (0..<(count - 1)).map { _ in Int(next() % UInt64(total + 1)) }.sorted()
        cuts = [0] + cuts + [total]
        return (0..<count).map { cuts[$0 + 1] - cuts[$0] }
    }
}
