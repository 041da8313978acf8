import Foundation
import TestSupport
import Synchronization

/// One transfer as a writer sends it: a client-chosen id and the body, resent unchanged on retry.
struct TransferRequest: Sendable, Hashable {
    let id: String
    let debit: String
    let credit: String
    let amount: Int64

    var body: [String: any Sendable] {
        ["id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": "CNY"]
    }

    /// Whether a transfer as the API shows it is this one.
    func matches(_ json: [String: Any]) -> Bool {
        json["id"] as? String == id && json["debit_account_id"] as? String == debit
            && json["credit_account_id"] as? String == credit && (json["amount"] as? NSNumber)?.int64Value == amount
    }
}

/// An organization with a key and a few accounts funded through the API (a deposit by the
/// operator into its operating account, then moved into each account by the organization).
struct Tenant: Sendable {
    let key: String
    let accounts: [String]

    static let fundingPerAccount: Int64 = 1_000_000_000

    static func create(on client: HTTPClient, accounts count: Int) async throws -> Tenant {
        let organization = try await client.require(201, "POST", "/v1/organizations", key: operatorKey, json: [
            "name": "Ops tenant \(UUID().uuidString.prefix(8))", "kind": "enterprise", "country": "CN",
        ])
        let organizationID = try requireString(organization["id"])
        let key = try requireString(try await client.require(201, "POST", "/v1/organizations/\(organizationID)/api-keys",
                                                       key: operatorKey, json: ["label": "writers"])["key"])
        let deposit = try await client.require(201, "POST", "/v1/deposits", key: operatorKey, json: [
            "organization_id": organizationID, "amount": fundingPerAccount * Int64(count), "currency": "CNY",
            "external_ref": "OPS-\(UUID().uuidString)",
        ])
        let operating = try requireString(deposit["credit_account_id"])
        var accounts: [String] = []
        for _ in 0..<count {
            let id = UUID().uuidString.lowercased()
            _ = try await client.require(201, "POST", "/v1/accounts", key: key, json: ["id": id, "owner_id": organizationID, "currency": "CNY"])
            let funding = TransferRequest(id: UUID().uuidString.lowercased(), debit: operating, credit: id, amount: fundingPerAccount)
            _ = try await client.require(201, "POST", "/v1/transfers", key: key, json: funding.body)
            accounts.append(id)
        }
        return Tenant(key: key, accounts: accounts)
    }

    /// A transfer of 1–1,000 minor units between two different accounts of this tenant.
    func randomTransfer(using generator: inout some RandomNumberGenerator) -> TransferRequest {
        let debit = accounts.randomElement(using: &generator)!
        let credit = accounts.filter { $0 != debit }.randomElement(using: &generator)!
        return TransferRequest(id: UUID().uuidString.lowercased(), debit: debit, credit: credit,
                               amount: Int64.random(in: 1...1_000, using: &generator))
    }
}

/// The string a harness step needs from a JSON answer.
func requireString(_ value: Any?) throws -> String {
    guard let text = value as? String else { throw HarnessError("expected a string in the answer, got \(String(describing: value))") }
    return text
}

/// A flag writers check before each request.
final class StopFlag: Sendable {
    private let stopped = Atomic(false)
    var isSet: Bool { stopped.load(ordering: .acquiring) }
    func set() { stopped.store(true, ordering: .releasing) }
}

/// Runs `count` writers posting transfers until `stop` is set; a writer also ends at its first
/// request without an answer (its server is gone). Every outcome goes to `log`.
func runWriters(_ count: Int, tenant: Tenant, client: HTTPClient, log: TransferLog, seed: UInt64, stop: StopFlag) async {
    await withTaskGroup(of: Void.self) { group in
        for writer in 0..<count {
            group.addTask {
                var generator = SeededGenerator(seed: seed &+ UInt64(writer) &* 0x9E37_79B9)
                while !stop.isSet {
                    let request = tenant.randomTransfer(using: &generator)
                    let outcome = await client.send("POST", "/v1/transfers", key: tenant.key, json: request.body)
                    if await log.record(request, outcome) == .inDoubt { return }
                }
            }
        }
    }
}
