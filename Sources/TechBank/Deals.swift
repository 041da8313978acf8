import Foundation
import Ledger
import Postgres

public enum DealKind: String, Sendable, Codable, CaseIterable {
    case assignment
    case exclusiveLicence = "exclusive_licence"
    case soleLicence = "sole_licence"
    case nonExclusiveLicence = "non_exclusive_licence"
}

/// draft → proposed | approval_required → approved → signed → active → completed; cancelled before
/// signing, terminated after it, disputed while a milestone is in dispute.
public enum DealStatus: String, Sendable, Codable, CaseIterable {
    case draft, proposed, approved, signed, active, completed, cancelled, disputed, terminated
    case approvalRequired = "approval_required"

    /// States in which terms may still change.
    var amendable: Bool { self == .draft || self == .proposed }
    /// States before signing.
    var unsigned: Bool { [.draft, .proposed, .approvalRequired, .approved].contains(self) }
}

public enum ContractCategory: String, Sendable, Codable, CaseIterable {
    case development, transfer, licence, consulting, service
}

public struct MilestoneTerms: Sendable, Codable, Equatable {
    public let name: String
    public let amount: Int64
    /// YYYY-MM-DD.
    public let dueOn: String
    public let evidenceRequired: Bool

    public init(name: String, amount: Int64, dueOn: String, evidenceRequired: Bool) {
        self.name = name
        self.amount = amount
        self.dueOn = dueOn
        self.evidenceRequired = evidenceRequired
    }

    enum CodingKeys: String, CodingKey {
        case name, amount
        case dueOn = "due_on"
        case evidenceRequired = "evidence_required"
    }
}

/// The terms of a deal, as agreed in one version. Amounts are minor units of `currency`.
public struct DealTerms: Sendable, Codable, Equatable {
    public var kind: DealKind
    public var fieldOfUse: String
    /// ISO 3166-1 alpha-2 codes, or `["WORLD"]`.
    public var territories: [String]
    /// YYYY-MM-DD; `endsOn` nil: no end.
    public var startsOn: String
    public var endsOn: String?
    public var currency: String
    public var upfront: Int64
    public var milestones: [MilestoneTerms]
    public var royaltyBP: Int
    public var minimumAnnualRoyalty: Int64
    public var sublicensingAllowed: Bool
    public var brokerFeeBP: Int
    public var subParkFeeBP: Int
    public var contractCategory: ContractCategory

    public init(kind: DealKind, fieldOfUse: String, territories: [String], startsOn: String, endsOn: String?, currency: String, upfront: Int64,
                milestones: [MilestoneTerms], royaltyBP: Int, minimumAnnualRoyalty: Int64, sublicensingAllowed: Bool, brokerFeeBP: Int,
                subParkFeeBP: Int, contractCategory: ContractCategory) {
        self.kind = kind
        self.fieldOfUse = fieldOfUse
        self.territories = territories
        self.startsOn = startsOn
        self.endsOn = endsOn
        self.currency = currency
        self.upfront = upfront
        self.milestones = milestones
        self.royaltyBP = royaltyBP
        self.minimumAnnualRoyalty = minimumAnnualRoyalty
        self.sublicensingAllowed = sublicensingAllowed
        self.brokerFeeBP = brokerFeeBP
        self.subParkFeeBP = subParkFeeBP
        self.contractCategory = contractCategory
    }

    /// Upfront plus every milestone: the certified technology income.
    public var total: Int64 { milestones.reduce(upfront) { $0 + $1.amount } }

    enum CodingKeys: String, CodingKey {
        case kind, territories, currency, upfront, milestones
        case fieldOfUse = "field_of_use"
        case startsOn = "starts_on"
        case endsOn = "ends_on"
        case royaltyBP = "royalty_bp"
        case minimumAnnualRoyalty = "minimum_annual_royalty"
        case sublicensingAllowed = "sublicensing_allowed"
        case brokerFeeBP = "broker_fee_bp"
        case subParkFeeBP = "sub_park_fee_bp"
        case contractCategory = "contract_category"
    }
}

public enum MilestoneStatus: String, Sendable, Codable, CaseIterable {
    case scheduled, funded, disputed, released, refunded
}

public struct MilestoneState: Sendable, Equatable {
    public let number: Int
    public let name: String
    public let amount: Int64
    public let dueOn: PostgresDate
    public let evidenceRequired: Bool
    public let status: MilestoneStatus
    /// The evidence of delivery the buyer gave on release.
    public let evidence: String?
    public let disputeReason: String?
    public let resolutionReason: String?
}

public struct Deal: Sendable, Equatable {
    public let id: UUID
    public let technologyID: UUID
    public let sellerID: UUID
    public let buyerID: UUID
    public let brokerID: UUID?
    public let matchID: UUID?
    public let createdBy: UUID
    public let status: DealStatus
    public let version: Int
    public let terms: DealTerms
    /// Why the committee had to approve; nil if it did not.
    public let approvalRule: String?
    public let sellerSignedAt: Date?
    public let buyerSignedAt: Date?
    public let signedAt: Date?
    public let fundedAt: Date?
    public let createdAt: Date
    public let updatedAt: Date
    public let milestones: [MilestoneState]

    public var parties: [UUID] { [sellerID, buyerID] + (brokerID.map { [$0] } ?? []) }
}

public struct DealVersion: Sendable, Equatable {
    public let version: Int
    public let terms: DealTerms
    public let actorID: UUID
    public let createdAt: Date
}

public struct RoyaltyReport: Sendable, Equatable {
    public let id: UUID
    public let dealID: UUID
    public let from: PostgresDate
    /// Inclusive.
    public let to: PostgresDate
    public let netSales: Int64
    public let currency: String
    public let royalty: Int64
    /// What the annual minimum added at year end.
    public let minimumTopUp: Int64
    public let createdAt: Date
}

public struct Registration: Sendable, Equatable {
    public let dealID: UUID
    public let number: String
    public let contractCategory: String
    public let parties: JSONB
    public let certifiedIncome: Int64
    public let currency: String
    public let signedOn: PostgresDate
    public let filingDueOn: PostgresDate?
}

/// The deal rules an operator configures.
public struct DealRules: Sendable {
    /// Deals whose total (upfront plus milestones) exceeds this, in minor units of any currency,
    /// need the committee's approval.
    public var approvalThreshold: Int64 = 100_000_000
    /// The part of the seller's income the institute keeps before the inventors share the rest
    /// (China's law on transforming scientific results gives inventors at least half).
    public var instituteShareBP: Int = 5_000

    public init() {}
}

/// An exclusive right the deal would grant overlaps another deal's (`conflictingDealID`).
public struct ExclusivityConflict: Error, Sendable, Equatable {
    public let conflictingDealID: UUID?
    public let detail: String
}

extension Identity {
    /// Who may read a deal: its parties (seller, buyer, broker), their sub-parks, the committee and the operator.
    public func canSee(_ deal: Deal, subParks: [UUID?]) -> Bool {
        readsEverything || deal.parties.contains(organizationID) || (kind == .subPark && subParks.contains(organizationID))
    }
}

/// Deals: terms and versions, approval, signatures, escrow, milestones, royalties.
public struct Deals: Sendable {
    /// The most results a listing skips through (offset cursors beyond it are refused).
    public static let maxOffset = 10_000

    public let pool: PostgresPool
    public let rules: DealRules

    public init(pool: PostgresPool, rules: DealRules = DealRules()) {
        self.pool = pool
        self.rules = rules
    }

    // MARK: Terms

    /// Creates a draft deal (version 1).
    /// - Throws: `.validation` naming the field for a technology that is not listed or licensed
    ///   or not the seller's, a buyer that is not an enterprise or institute, fees without a
    ///   broker or sub-park to receive them.
    public func create(id: UUID = UUID(), technologyID: UUID, sellerID: UUID, buyerID: UUID, brokerID: UUID?, matchID: UUID?,
                       terms: DealTerms, actor: UUID) async throws -> Deal {
        try await pool.withTransaction { connection in
            let technology = try await connection.query("SELECT owner_id, status FROM techbank.technologies WHERE id = $1 FOR SHARE", [technologyID])
            guard let row = technology.first, try row.decode(UUID.self, at: 0) == sellerID,
                  ["listed", "licensed"].contains(try row.decode(String.self, at: 1)) else {
                throw TechBankError(.validation, field: "technology_id", "must name a listed or licensed technology of the seller")
            }
            let buyer = try await connection.query("SELECT kind FROM techbank.organizations WHERE id = $1", [buyerID])
            guard let kind = try buyer.first?.decode(String.self, at: 0), ["enterprise", "institute"].contains(kind), buyerID != sellerID else {
                throw TechBankError(.validation, field: "buyer_id", "must name an enterprise or another institute")
            }
            try await Self.checkFeeRecipients(connection, terms: terms, sellerID: sellerID, brokerID: brokerID)
            do {
                try await connection.query(
                    """
                    INSERT INTO techbank.deals (id, technology_id, seller_id, buyer_id, broker_id, match_id, created_by, terms, kind, currency, total_amount)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    """,
                    [id, technologyID, sellerID, buyerID, brokerID, matchID, actor, try JSONB(encoding: terms), terms.kind.rawValue, terms.currency, terms.total])
            } catch let error as PostgresError where error.constraint == "deals_pkey" {
                throw TechBankError(.conflict, field: "id", "a deal with this id exists")
            } catch let error as PostgresError where error.constraint == "deals_currency_fkey" {
                throw TechBankError(.validation, field: "currency", "the ledger does not know this currency")
            }
            try await Self.recordVersion(connection, id, version: 1, terms: terms, actor: actor)
            try await Self.journal(connection, id, "created", actor: actor)
        }
        return try await require(id)
    }

    /// Replaces the terms of a draft or proposed deal at `expectedVersion`, as a new version.
    /// Signatures given to the earlier terms lapse, and a proposed deal whose new terms need the
    /// committee becomes approval_required (with the rule).
    public func amend(_ id: UUID, terms: DealTerms, expectedVersion: Int, actor: UUID) async throws -> Deal {
        try await pool.withTransaction { connection in
            let deal = try await Self.lock(connection, id)
            guard deal.version == expectedVersion else { throw TechBankError(.preconditionFailed, "the deal has changed; fetch it again") }
            guard deal.status.amendable else { throw Self.illegal("amend", deal.status) }
            try await Self.checkFeeRecipients(connection, terms: terms, sellerID: deal.sellerID, brokerID: deal.brokerID)
            let rule = deal.status == .proposed ? try await approvalRule(connection, deal, terms: terms) : nil
            do {
                try await connection.query(
                    """
                    UPDATE techbank.deals SET terms = $2, kind = $3, currency = $4, total_amount = $5, version = version + 1, updated_at = now(),
                           seller_signed_at = NULL, buyer_signed_at = NULL,
                           status = CASE WHEN $6::text IS NULL THEN status ELSE 'approval_required' END, approval_rule = coalesce($6, approval_rule)
                     WHERE id = $1
                    """,
                    [id, try JSONB(encoding: terms), terms.kind.rawValue, terms.currency, terms.total, rule])
            } catch let error as PostgresError where error.constraint == "deals_currency_fkey" {
                throw TechBankError(.validation, field: "currency", "the ledger does not know this currency")
            }
            try await Self.recordVersion(connection, id, version: deal.version + 1, terms: terms, actor: actor)
            try await Self.journal(connection, id, "amended", actor: actor)
        }
        return try await require(id)
    }

    /// draft → proposed, or → approval_required when a rule needs the committee (the rule is
    /// recorded): a total above the threshold, an assignment, or a party in another country than
    /// the seller.
    public func propose(_ id: UUID, actor: UUID) async throws -> Deal {
        try await transition(id, actor: actor, event: "proposed") { connection, deal in
            guard deal.status == .draft else { throw Self.illegal("propose", deal.status) }
            let rule = try await approvalRule(connection, deal, terms: deal.terms)
            try await connection.query(
                "UPDATE techbank.deals SET status = $2, approval_rule = $3, updated_at = now() WHERE id = $1",
                [id, rule == nil ? DealStatus.proposed.rawValue : DealStatus.approvalRequired.rawValue, rule])
        }
    }

    /// The rule that makes `terms` of `deal` need the committee, or nil: a total above the
    /// threshold, an assignment, or a party in another country than the seller.
    func approvalRule(_ connection: PostgresConnection, _ deal: Deal, terms: DealTerms) async throws -> String? {
        let countries = try await connection.query(
            "SELECT id, country FROM techbank.organizations WHERE id = ANY($1)", [deal.parties])
        var countryOf: [UUID: String] = [:]
        for row in countries { countryOf[try row.decode(UUID.self, at: 0)] = try row.decode(String.self, at: 1) }
        let sellerCountry = countryOf[deal.sellerID]
        return if terms.total > rules.approvalThreshold { "amount_above_threshold" }
            else if terms.kind == .assignment { "assignment" }
            else if deal.parties.contains(where: { countryOf[$0] != sellerCountry }) { "cross_border" }
            else { nil }
    }

    /// The committee's decision on a deal that needs approval: approve → approved; reject → back
    /// to draft, where the parties may amend and propose again.
    public func decide(_ id: UUID, approve: Bool, reason: String, committee: UUID) async throws -> Deal {
        try await transition(id, actor: committee, event: approve ? "approved" : "rejected") { connection, deal in
            guard deal.status == .approvalRequired else { throw Self.illegal(approve ? "approve" : "reject", deal.status) }
            try await connection.query(
                """
                INSERT INTO techbank.deal_approvals (id, deal_id, deal_version, committee_id, decision, rule, reason)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                """,
                [UUID(), id, Int32(deal.version), committee, approve ? "approve" : "reject", deal.approvalRule ?? "", reason])
            try await connection.query(
                "UPDATE techbank.deals SET status = $2, updated_at = now() WHERE id = $1",
                [id, approve ? DealStatus.approved.rawValue : DealStatus.draft.rawValue])
        }
    }

    /// Records `party`'s signature (seller or buyer). With both, the deal is signed: its rights are
    /// granted (the database refuses overlapping exclusive rights), the technology becomes
    /// licensed or assigned, and the registration record is produced.
    /// - Throws: `ExclusivityConflict` if the rights overlap another signed deal's.
    public func sign(_ id: UUID, party: UUID) async throws -> Deal {
        do {
            return try await transition(id, actor: party, event: "signed") { connection, deal in
                guard deal.status == .proposed || deal.status == .approved else { throw Self.illegal("sign", deal.status) }
                let column = party == deal.sellerID ? "seller_signed_at" : "buyer_signed_at"
                let already = party == deal.sellerID ? deal.sellerSignedAt : deal.buyerSignedAt
                guard already == nil else { throw TechBankError(.illegalTransition, field: "status", "you have signed this deal already; it is \(deal.status.rawValue)") }
                try await connection.query("UPDATE techbank.deals SET \(column) = now(), updated_at = now() WHERE id = $1", [id])
                let otherSigned = party == deal.sellerID ? deal.buyerSignedAt != nil : deal.sellerSignedAt != nil
                if otherSigned { try await Self.completeSigning(connection, deal) }
            }
        } catch let error as PostgresError where error.sqlState == "23P01" {
            throw try await exclusivityConflict(id)
        }
    }

    /// The buyer funds the deal: the upfront fee and every milestone become separate holds on the
    /// buyer's account in one atomic batch, and the upfront fee is released to the seller at once
    /// (the deal is signed). The deal becomes active.
    /// - Throws: `PaymentRefused` with the ledger's outcome if the buyer lacks funds.
    public func fund(_ id: UUID, actor: UUID) async throws -> Deal {
        try await transition(id, actor: actor, event: "funded") { connection, deal in
            guard deal.status == .signed else { throw Self.illegal("fund", deal.status) }
            let bank = try await Money.bankID(connection)
            let currency = deal.terms.currency
            let buyer = AccountRole.operating(deal.buyerID).account(currency)
            let escrow = AccountRole.escrow(bank: bank).account(currency)
            try await Ledger.openAccount(buyer, on: connection)
            try await Ledger.openAccount(escrow, on: connection)
            var requests: [TransferRequest] = []
            var holds: [(String, Int64)] = deal.milestones.map { ("m\($0.number)", $0.amount) }
            if deal.terms.upfront > 0 { holds.insert(("upfront", deal.terms.upfront), at: 0) }
            for (name, amount) in holds {
                requests.append(TransferRequest(id: Self.holdID(deal.id, name), action: .hold(debit: buyer.id, credit: escrow.id, amount: amount, currency: currency, timeoutSeconds: nil),
                                                code: MoneyModel.BankCode.escrowFund.rawValue, metadata: try JSONB(encoding: ["deal_id": deal.id.uuidString.lowercased(), "part": name])))
            }
            if deal.terms.upfront > 0 {
                requests += try await Self.releaseRequests(connection, deal, part: "upfront", amount: deal.terms.upfront, bank: bank, rules: rules)
            }
            try await Money.pay(requests, on: connection)
            try await connection.query("UPDATE techbank.deal_milestones SET status = 'funded' WHERE deal_id = $1", [id])
            try await connection.query("UPDATE techbank.deals SET status = 'active', funded_at = now(), updated_at = now() WHERE id = $1", [id])
            try await Self.completeIfDone(connection, id)
        }
    }

    /// The buyer releases funded milestone `number` to the seller, naming the `evidence` of delivery
    /// (required when the terms say so): the hold is posted and split in one atomic batch.
    public func release(_ id: UUID, milestone number: Int, evidence: String?, actor: UUID) async throws -> Deal {
        try await transition(id, actor: actor, event: "milestone_released", detail: ["milestone": number]) { connection, deal in
            let milestone = try Self.milestone(deal, number)
            guard deal.status == .active || deal.status == .disputed, milestone.status == .funded else {
                throw TechBankError(.illegalTransition, field: "status", "cannot release milestone \(number): it is \(milestone.status.rawValue) and the deal is \(deal.status.rawValue)")
            }
            guard evidence != nil || !milestone.evidenceRequired else {
                throw TechBankError(.validation, field: "evidence", "milestone \(number) is released only against evidence of delivery")
            }
            try await connection.query(
                "UPDATE techbank.deal_milestones SET evidence = $3 WHERE deal_id = $1 AND number = $2", [id, Int32(number), evidence])
            try await payOut(connection, deal, milestone, resolution: nil)
        }
    }

    /// Either party disputes a funded milestone: its hold stays frozen until the committee
    /// resolves it, and the deal is disputed meanwhile.
    public func dispute(_ id: UUID, milestone number: Int, reason: String, actor: UUID) async throws -> Deal {
        try await transition(id, actor: actor, event: "milestone_disputed", detail: ["milestone": number]) { connection, deal in
            let milestone = try Self.milestone(deal, number)
            guard deal.status == .active || deal.status == .disputed, milestone.status == .funded else {
                throw TechBankError(.illegalTransition, field: "status", "cannot dispute milestone \(number): it is \(milestone.status.rawValue) and the deal is \(deal.status.rawValue)")
            }
            try await connection.query(
                "UPDATE techbank.deal_milestones SET status = 'disputed', dispute_reason = $3 WHERE deal_id = $1 AND number = $2", [id, Int32(number), reason])
            try await connection.query("UPDATE techbank.deals SET status = 'disputed', updated_at = now() WHERE id = $1", [id])
        }
    }

    /// The committee resolves a disputed milestone: release it to the seller, or refund it (void
    /// the hold) to the buyer.
    public func resolve(_ id: UUID, milestone number: Int, release: Bool, reason: String, committee: UUID) async throws -> Deal {
        try await transition(id, actor: committee, event: release ? "dispute_released" : "dispute_refunded", detail: ["milestone": number]) { connection, deal in
            let milestone = try Self.milestone(deal, number)
            guard milestone.status == .disputed else {
                throw TechBankError(.illegalTransition, field: "status", "cannot resolve milestone \(number): it is \(milestone.status.rawValue)")
            }
            if release {
                try await payOut(connection, deal, milestone, resolution: reason)
            } else {
                try await Money.pay([TransferRequest(id: Self.transferID(deal.id, "m\(number).refund", "void"),
                                                     action: .voidPending(pendingID: Self.holdID(deal.id, "m\(number)")), code: MoneyModel.BankCode.escrowRefund.rawValue)], on: connection)
                try await connection.query(
                    "UPDATE techbank.deal_milestones SET status = 'refunded', resolution_reason = $3 WHERE deal_id = $1 AND number = $2",
                    [id, Int32(number), reason])
            }
            try await connection.query(
                """
                UPDATE techbank.deals SET status = 'active', updated_at = now()
                 WHERE id = $1 AND status = 'disputed'
                   AND NOT EXISTS (SELECT 1 FROM techbank.deal_milestones WHERE deal_id = $1 AND status = 'disputed')
                """, [id])
            try await Self.completeIfDone(connection, id)
        }
    }

    /// Cancels a deal. Before signing, any party may: → cancelled. After signing only the committee
    /// may: → terminated; every unreleased hold is voided (refunded) and the granted rights end today.
    public func cancel(_ id: UUID, actor: UUID, byCommittee: Bool) async throws -> Deal {
        try await transition(id, actor: actor, event: "cancelled") { connection, deal in
            if deal.status.unsigned {
                try await connection.query("UPDATE techbank.deals SET status = 'cancelled', updated_at = now() WHERE id = $1", [id])
                return
            }
            guard [.signed, .active, .disputed].contains(deal.status) else { throw Self.illegal("cancel", deal.status) }
            guard byCommittee else {
                throw TechBankError(.illegalTransition, field: "status", "a deal that is \(deal.status.rawValue) can only be terminated by the committee")
            }
            let held = deal.milestones.filter { $0.status == .funded || $0.status == .disputed }
            try await Money.pay(held.map {
                TransferRequest(id: Self.transferID(deal.id, "m\($0.number).refund", "void"), action: .voidPending(pendingID: Self.holdID(deal.id, "m\($0.number)")),
                                code: MoneyModel.BankCode.escrowRefund.rawValue)
            }, on: connection)
            try await connection.query(
                "UPDATE techbank.deal_milestones SET status = 'refunded' WHERE deal_id = $1 AND status IN ('funded', 'disputed')", [id])
            try await connection.query("DELETE FROM techbank.licence_grants WHERE deal_id = $1 AND lower(period) > current_date", [id])
            try await connection.query(
                """
                UPDATE techbank.licence_grants SET period = daterange(lower(period), greatest(lower(period) + 1, current_date + 1))
                 WHERE deal_id = $1 AND (upper_inf(period) OR upper(period) > current_date + 1)
                """, [id])
            try await connection.query("UPDATE techbank.deals SET status = 'terminated', updated_at = now() WHERE id = $1", [id])
        }
    }

    // MARK: Royalties

    /// The buyer reports net sales for a period; the royalty due (with the annual minimum topped
    /// up when the period ends on 31 December) is paid from the buyer to the seller with the fee
    /// splits and the inventors' distribution, in one atomic batch.
    /// - Throws: `.conflict` for a period overlapping an earlier report; `PaymentRefused`.
    public func reportRoyalty(_ id: UUID, from: PostgresDate, to: PostgresDate, netSales: Int64, currency: String, actor: UUID) async throws -> RoyaltyReport {
        let reportID = derivedID("royalty", id.uuidString, from.description, to.description)
        do {
            _ = try await transition(id, actor: actor, event: "royalty_reported", detail: ["from": from.description, "to": to.description]) { connection, deal in
                guard deal.status == .active || deal.status == .disputed || deal.status == .completed else { throw Self.illegal("report royalties on", deal.status) }
                guard currency == deal.terms.currency else {
                    throw TechBankError(.validation, field: "currency", "must be the deal's currency \(deal.terms.currency)")
                }
                if let start = PostgresDate(iso8601: deal.terms.startsOn), from < start {
                    throw TechBankError(.validation, field: "period.from", "must not be before the term starts (\(deal.terms.startsOn))")
                }
                if let endText = deal.terms.endsOn, let end = PostgresDate(iso8601: endText), to > end {
                    throw TechBankError(.validation, field: "period.to", "must not be after the term ends (\(endText))")
                }
                let royalty = Split.part(of: netSales, bp: deal.terms.royaltyBP)
                var topUp: Int64 = 0
                let (year, month, day) = to.components
                // The year's minimum is settled by the report that closes the year: one ending on
                // 31 December, or on the last day of the term.
                if (month == 12 && day == 31) || deal.terms.endsOn == to.description, deal.terms.minimumAnnualRoyalty > 0 {
                    let paid = try await connection.query(
                        """
                        SELECT coalesce(sum(royalty + minimum_top_up), 0)::bigint FROM techbank.royalty_reports
                         WHERE deal_id = $1 AND extract(year FROM upper(period) - 1) = $2
                        """, [id, Int32(year)])[0].decode(Int64.self, at: 0)
                    topUp = max(0, deal.terms.minimumAnnualRoyalty - paid - royalty)
                }
                try await connection.query(
                    """
                    INSERT INTO techbank.royalty_reports (id, deal_id, period, net_sales, currency, royalty, minimum_top_up, created_by)
                    VALUES ($1, $2, daterange($3, $4, '[]'), $5, $6, $7, $8, $9)
                    """,
                    [reportID, id, from, to, netSales, currency, royalty, topUp, actor])
                let bank = try await Money.bankID(connection)
                let buyer = AccountRole.operating(deal.buyerID).account(currency)
                try await Ledger.openAccount(buyer, on: connection)
                try await Money.pay(try await Self.incomeRequests(connection, deal, part: "royalty.\(from).\(to)", amount: royalty + topUp, from: buyer.id,
                                                                  bank: bank, rules: rules), on: connection)
            }
        } catch let error as PostgresError where error.constraint == "royalty_reports_no_overlap" || error.constraint == "royalty_reports_pkey" {
            throw TechBankError(.conflict, field: "period", "a royalty report of this deal already covers part of this period")
        }
        guard let report = try await royaltyReports(of: id).first(where: { $0.id == reportID }) else {
            throw TechBankError(.conflict, field: "period", "the report vanished")
        }
        return report
    }

    public func royaltyReports(of id: UUID) async throws -> [RoyaltyReport] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT id, deal_id, lower(period), upper(period) - 1, net_sales, currency, royalty, minimum_top_up, created_at
                  FROM techbank.royalty_reports WHERE deal_id = $1 ORDER BY lower(period)
                """, [id])
        }
        return try rows.map {
            RoyaltyReport(id: try $0.decode(UUID.self, at: 0), dealID: try $0.decode(UUID.self, at: 1), from: try $0.decode(PostgresDate.self, at: 2),
                          to: try $0.decode(PostgresDate.self, at: 3), netSales: try $0.decode(Int64.self, at: 4), currency: try $0.decode(String.self, at: 5),
                          royalty: try $0.decode(Int64.self, at: 6), minimumTopUp: try $0.decode(Int64.self, at: 7), createdAt: try $0.decode(Date.self, at: 8))
        }
    }

    // MARK: Reading

    public func get(_ id: UUID) async throws -> Deal? {
        try await pool.withConnection { connection in try await Self.load(connection, id, lock: false) }
    }

    /// Deals `identity` may see, newest first, after the cursor `(created_at, id)`.
    public func list(visibleTo identity: Identity, status: DealStatus?, technologyID: UUID?, limit: Int, after cursor: (Date, UUID)?) async throws -> (items: [Deal], next: (Date, UUID)?) {
        let (ids, items) = try await pool.withConnection { connection in
            let ids = try await connection.query(
                """
                SELECT d.id FROM techbank.deals d
                  JOIN techbank.organizations s ON s.id = d.seller_id
                  JOIN techbank.organizations b ON b.id = d.buyer_id
                 WHERE ($1 OR $2 IN (d.seller_id, d.buyer_id, d.broker_id) OR $2 IN (s.sub_park_id, b.sub_park_id))
                   AND ($3::text IS NULL OR d.status = $3) AND ($4::uuid IS NULL OR d.technology_id = $4)
                   AND ($5::timestamptz IS NULL OR (d.created_at, d.id) < ($5, $6))
                 ORDER BY d.created_at DESC, d.id DESC LIMIT $7
                """,
                [identity.readsEverything, identity.organizationID, status?.rawValue, technologyID, cursor?.0, cursor?.1, Int64(limit + 1)])
            return (ids, try await Self.load(connection, try ids.prefix(limit).map { try $0.decode(UUID.self, at: 0) }, lock: false))
        }
        return (items, ids.count > limit ? items.last.map { ($0.createdAt, $0.id) } : nil)
    }

    public func versions(of id: UUID) async throws -> [DealVersion] {
        let rows = try await pool.withConnection { connection in
            try await connection.query("SELECT version, terms, actor_id, created_at FROM techbank.deal_versions WHERE deal_id = $1 ORDER BY version", [id])
        }
        return try rows.map {
            DealVersion(version: try $0.decode(Int.self, at: 0), terms: try $0.decode(JSONB.self, at: 1).decode(DealTerms.self),
                        actorID: try $0.decode(UUID.self, at: 2), createdAt: try $0.decode(Date.self, at: 3))
        }
    }

    public func registration(of id: UUID) async throws -> Registration? {
        try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.registrationColumns) FROM techbank.registrations WHERE deal_id = $1", [id]).first.map(Self.decodeRegistration)
        }
    }

    /// Registrations with a filing deadline on or before `before`, soonest first, of deals
    /// `identity` may see; `offset` comes from the previous page's cursor.
    public func filingsDue(visibleTo identity: Identity, before: PostgresDate, limit: Int, offset: Int) async throws -> (items: [Registration], nextOffset: Int?) {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(qualified(Self.registrationColumns, by: "r"))
                  FROM techbank.registrations r JOIN techbank.deals d ON d.id = r.deal_id
                  JOIN techbank.organizations s ON s.id = d.seller_id JOIN techbank.organizations b ON b.id = d.buyer_id
                 WHERE r.filing_due_on IS NOT NULL AND r.filing_due_on <= $3
                   AND ($1 OR $2 IN (d.seller_id, d.buyer_id, d.broker_id) OR $2 IN (s.sub_park_id, b.sub_park_id))
                 ORDER BY r.filing_due_on, r.number LIMIT $4 OFFSET $5
                """,
                [identity.readsEverything, identity.organizationID, before, Int64(limit + 1), Int64(offset)])
        }
        return (try rows.prefix(limit).map(Self.decodeRegistration), rows.count > limit ? offset + limit : nil)
    }

    /// Those of `technologyIDs` on which `organizationID` is the buyer or broker of a
    /// proposed-or-later deal: such parties may read the technology's confidential description.
    public func counterpartyTechnologies(of organizationID: UUID, among technologyIDs: [UUID]) async throws -> Set<UUID> {
        guard !technologyIDs.isEmpty else { return [] }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT DISTINCT technology_id FROM techbank.deals
                 WHERE technology_id = ANY($1) AND $2 IN (buyer_id, broker_id) AND status NOT IN ('draft', 'cancelled')
                """, [technologyIDs, organizationID])
        }
        return Set(try rows.map { try $0.decode(UUID.self, at: 0) })
    }

    // MARK: Internals

    func require(_ id: UUID) async throws -> Deal {
        guard let deal = try await get(id) else { throw TechBankError(.conflict, field: "id", "the deal vanished") }
        return deal
    }

    /// Locks the deal, runs `change` and journals `event`, all in one transaction (retried on
    /// serialization failures and deadlocks).
    func transition(_ id: UUID, actor: UUID, event: String, detail: [String: any Sendable & Encodable] = [:],
                    _ change: @escaping @Sendable (PostgresConnection, Deal) async throws -> Void) async throws -> Deal {
        let extra = try JSONB(encoding: detail.mapValues { AnyEncodable($0) })
        try await pool.withTransaction { connection in
            let deal = try await Self.lock(connection, id)
            try await change(connection, deal)
            try await Self.journal(connection, id, event, actor: actor, detail: extra)
        }
        return try await require(id)
    }

    static func lock(_ connection: PostgresConnection, _ id: UUID) async throws -> Deal {
        guard let deal = try await load(connection, id, lock: true) else { throw DealNotFound() }
        return deal
    }

    static func load(_ connection: PostgresConnection, _ id: UUID, lock: Bool) async throws -> Deal? {
        try await load(connection, [id], lock: lock).first
    }

    /// The deals `ids`, in that order (missing ones left out), with their milestones: two queries.
    static func load(_ connection: PostgresConnection, _ ids: [UUID], lock: Bool) async throws -> [Deal] {
        let rows = try await connection.query(
            """
            SELECT id, technology_id, seller_id, buyer_id, broker_id, match_id, created_by, status, version, terms, approval_rule,
                   seller_signed_at, buyer_signed_at, signed_at, funded_at, created_at, updated_at
              FROM techbank.deals WHERE id = ANY($1) \(lock ? "FOR UPDATE" : "")
            """, [ids])
        let milestoneRows = try await connection.query(
            """
            SELECT deal_id, number, name, amount, due_on, evidence_required, status, evidence, dispute_reason, resolution_reason
              FROM techbank.deal_milestones WHERE deal_id = ANY($1) ORDER BY deal_id, number
            """,
            [ids])
        var milestones: [UUID: [MilestoneState]] = [:]
        for row in milestoneRows {
            milestones[try row.decode(UUID.self, at: 0), default: []].append(MilestoneState(
                number: try row.decode(Int.self, at: 1), name: try row.decode(String.self, at: 2), amount: try row.decode(Int64.self, at: 3),
                dueOn: try row.decode(PostgresDate.self, at: 4), evidenceRequired: try row.decode(Bool.self, at: 5),
                status: MilestoneStatus(rawValue: try row.decode(String.self, at: 6)) ?? .scheduled,
                evidence: try row.decode(String?.self, at: 7), disputeReason: try row.decode(String?.self, at: 8),
                resolutionReason: try row.decode(String?.self, at: 9)))
        }
        var deals: [UUID: Deal] = [:]
        for row in rows {
            let id = try row.decode(UUID.self, at: 0)
            let statusText = try row.decode(String.self, at: 7)
            guard let status = DealStatus(rawValue: statusText) else { throw PostgresError(code: .decoding, message: "unknown deal status \(statusText)") }
            deals[id] = Deal(
                id: id, technologyID: try row.decode(UUID.self, at: 1), sellerID: try row.decode(UUID.self, at: 2),
                buyerID: try row.decode(UUID.self, at: 3), brokerID: try row.decode(UUID?.self, at: 4), matchID: try row.decode(UUID?.self, at: 5),
                createdBy: try row.decode(UUID.self, at: 6), status: status, version: try row.decode(Int.self, at: 8),
                terms: try row.decode(JSONB.self, at: 9).decode(DealTerms.self), approvalRule: try row.decode(String?.self, at: 10),
                sellerSignedAt: try row.decode(Date?.self, at: 11), buyerSignedAt: try row.decode(Date?.self, at: 12), signedAt: try row.decode(Date?.self, at: 13),
                fundedAt: try row.decode(Date?.self, at: 14), createdAt: try row.decode(Date.self, at: 15), updatedAt: try row.decode(Date.self, at: 16),
                milestones: milestones[id] ?? [])
        }
        return ids.compactMap { deals[$0] }
    }

    static func illegal(_ verb: String, _ status: DealStatus) -> TechBankError {
        TechBankError(.illegalTransition, field: "status", "cannot \(verb) a deal that is \(status.rawValue)")
    }

    static func milestone(_ deal: Deal, _ number: Int) throws -> MilestoneState {
        guard let milestone = deal.milestones.first(where: { $0.number == number }) else { throw DealNotFound() }
        return milestone
    }

    /// Fees need someone to receive them: a broker fee needs a broker, a sub-park fee a seller in a sub-park.
    static func checkFeeRecipients(_ connection: PostgresConnection, terms: DealTerms, sellerID: UUID, brokerID: UUID?) async throws {
        if terms.brokerFeeBP > 0 && brokerID == nil {
            throw TechBankError(.validation, field: "broker_fee_bp", "must be 0 for a deal without a broker")
        }
        if terms.subParkFeeBP > 0 {
            let park = try await connection.query("SELECT sub_park_id FROM techbank.organizations WHERE id = $1", [sellerID]).first?.decode(UUID?.self, at: 0)
            guard park != nil else { throw TechBankError(.validation, field: "sub_park_fee_bp", "must be 0: the seller belongs to no sub-park") }
        }
    }

    static func recordVersion(_ connection: PostgresConnection, _ id: UUID, version: Int, terms: DealTerms, actor: UUID) async throws {
        try await connection.query(
            "INSERT INTO techbank.deal_versions (deal_id, version, terms, actor_id) VALUES ($1, $2, $3, $4)",
            [id, Int32(version), try JSONB(encoding: terms), actor])
        try await connection.query("DELETE FROM techbank.deal_milestones WHERE deal_id = $1", [id])
        for (index, milestone) in terms.milestones.enumerated() {
            try await connection.query(
                "INSERT INTO techbank.deal_milestones (deal_id, number, name, amount, due_on, evidence_required) VALUES ($1, $2, $3, $4, $5::date, $6)",
                [id, Int32(index + 1), milestone.name, milestone.amount, milestone.dueOn, milestone.evidenceRequired])
        }
    }

    static func journal(_ connection: PostgresConnection, _ id: UUID, _ event: String, actor: UUID, detail: JSONB = JSONB("{}")) async throws {
        try await connection.query(
            """
            SELECT ledger.journal_append('deal_' || $2, id, jsonb_build_object(
                       'actor_id', $3::uuid, 'status', status, 'version', version, 'terms', terms, 'approval_rule', approval_rule) || $4::jsonb)
              FROM techbank.deals WHERE id = $1
            """,
            [id, event, actor, detail])
    }

    /// Both have signed: grant the rights (the exclusion constraints decide), move the
    /// technology on, and produce the registration record.
    static func completeSigning(_ connection: PostgresConnection, _ deal: Deal) async throws {
        let terms = deal.terms
        for territory in terms.kind == .assignment ? ["WORLD"] : terms.territories {
            try await connection.query(
                """
                INSERT INTO techbank.licence_grants (deal_id, technology_id, kind, territory, territory_range, period)
                VALUES ($1, $2, $3, $4, $5::int4range, daterange($6::date, $7::date, '[]'))
                """,
                [deal.id, deal.technologyID, terms.kind.rawValue, territory, territoryRange(territory),
                 terms.startsOn, terms.kind == .assignment ? nil : terms.endsOn])
        }
        try await connection.query(
            """
            UPDATE techbank.technologies SET status = $2, version = version + 1, updated_at = now()
             WHERE id = $1 AND status IN ('listed', 'licensed') AND status <> $2
            """,
            [deal.technologyID, terms.kind == .assignment ? "assigned" : "licensed"])
        try await connection.query("UPDATE techbank.deals SET status = 'signed', signed_at = now() WHERE id = $1", [deal.id])
        // The registration number: year, SH, and a ten-digit count within the year.
        let year = try await connection.query("SELECT extract(year FROM now())::int").first!.decode(Int.self, at: 0)
        let sequence = try await connection.query(
            """
            INSERT INTO techbank.registration_counters (year, last) VALUES ($1, 1)
            ON CONFLICT (year) DO UPDATE SET last = registration_counters.last + 1 RETURNING last
            """, [Int32(year)])[0].decode(Int.self, at: 0)
        let digits = String(sequence)
        let number = "\(year)SH" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits
        let patents = try await connection.query("SELECT 1 FROM techbank.ip_rights WHERE technology_id = $1 AND type = 'patent' LIMIT 1", [deal.technologyID])
        let patentLicence = terms.kind != .assignment && !patents.isEmpty
        try await connection.query(
            """
            INSERT INTO techbank.registrations (deal_id, number, year, contract_category, parties, certified_income, currency, signed_on, filing_due_on)
            SELECT $1, $2, $3, $4,
                   (SELECT jsonb_agg(jsonb_build_object('role', r.role, 'organization_id', o.id, 'name', o.name, 'kind', o.kind, 'country', o.country) ORDER BY r.ord)
                      FROM (VALUES (1, 'seller', $5::uuid), (2, 'buyer', $6::uuid), (3, 'broker', $7::uuid)) AS r(ord, role, id)
                      JOIN techbank.organizations o ON o.id = r.id),
                   $8, $9, current_date, CASE WHEN $10 THEN ($11::date + interval '3 months')::date END
            """,
            [deal.id, number, Int32(year), terms.contractCategory.rawValue, deal.sellerID, deal.buyerID, deal.brokerID, terms.total, terms.currency,
             patentLicence, terms.startsOn])
    }

    /// AA = 0 … ZZ = 675, each country one slot; WORLD all of them.
    static func territoryRange(_ territory: String) -> String {
        guard territory != "WORLD" else { return "[0,676)" }
        let letters = territory.utf8.map { Int($0) - 65 }
        let slot = letters[0] * 26 + letters[1]
        return "[\(slot),\(slot + 1))"
    }

    /// Posts milestone `milestone`'s hold and splits it to the seller's side.
    func payOut(_ connection: PostgresConnection, _ deal: Deal, _ milestone: MilestoneState, resolution: String?) async throws {
        let bank = try await Money.bankID(connection)
        try await Money.pay(try await Self.releaseRequests(connection, deal, part: "m\(milestone.number)", amount: milestone.amount, bank: bank, rules: rules),
                            on: connection)
        try await connection.query(
            "UPDATE techbank.deal_milestones SET status = 'released', resolution_reason = $3 WHERE deal_id = $1 AND number = $2",
            [deal.id, Int32(milestone.number), resolution])
        try await Self.completeIfDone(connection, deal.id)
    }

    /// Posts the hold of `part` into escrow and pays it out of escrow to the seller's side.
    static func releaseRequests(_ connection: PostgresConnection, _ deal: Deal, part: String, amount: Int64, bank: UUID, rules: DealRules) async throws -> [TransferRequest] {
        let escrow = AccountRole.escrow(bank: bank).account(deal.terms.currency)
        let post = TransferRequest(id: transferID(deal.id, "\(part).release", "post"), action: .postPending(pendingID: holdID(deal.id, part), amount: nil),
                                   code: MoneyModel.BankCode.escrowRelease.rawValue)
        return [post] + (try await incomeRequests(connection, deal, part: part, amount: amount, from: escrow.id, bank: bank, rules: rules))
    }

    /// Seller income `amount` paid from account `source`: the broker's and the sub-park's fees,
    /// the seller's rest, then the inventors' share of that rest from the seller's account.
    static func incomeRequests(_ connection: PostgresConnection, _ deal: Deal, part: String, amount: Int64, from source: UUID, bank: UUID,
                               rules: DealRules) async throws -> [TransferRequest] {
        let currency = deal.terms.currency
        let technology = try await connection.query("SELECT inventors FROM techbank.technologies WHERE id = $1", [deal.technologyID])
        let inventors = try technology[0].decode(JSONB.self, at: 0).decode([Inventor].self)
        let subPark = try await connection.query("SELECT sub_park_id FROM techbank.organizations WHERE id = $1", [deal.sellerID]).first?.decode(UUID?.self, at: 0)
        let fees = Split.fees(of: amount, brokerBP: deal.brokerID == nil ? 0 : deal.terms.brokerFeeBP, subParkBP: subPark == nil ? 0 : deal.terms.subParkFeeBP)
        let seller = AccountRole.operating(deal.sellerID).account(currency)
        var requests: [TransferRequest] = []
        func pay(_ name: String, from debit: UUID, to account: NewAccount, _ value: Int64, code: MoneyModel.BankCode) async throws {
            guard value > 0 else { return }
            try await Ledger.openAccount(account, on: connection)
            requests.append(TransferRequest(id: transferID(deal.id, part, name), action: .post(debit: debit, credit: account.id, amount: value, currency: currency),
                                            code: code.rawValue, metadata: try JSONB(encoding: ["deal_id": deal.id.uuidString.lowercased(), "part": part])))
        }
        try await Ledger.openAccount(seller, on: connection)
        if let broker = deal.brokerID { try await pay("broker", from: source, to: AccountRole.operating(broker).account(currency), fees.broker, code: .brokerFee) }
        if let subPark { try await pay("sub_park", from: source, to: AccountRole.operating(subPark).account(currency), fees.subPark, code: .subParkFee) }
        try await pay("seller", from: source, to: seller, fees.seller, code: .sellerIncome)
        let distribution = Split.inventors(of: fees.seller, instituteBP: rules.instituteShareBP, shares: inventors.map(\.shareBP))
        for (index, (inventor, value)) in zip(inventors, distribution.inventors).enumerated() {
            try await pay("inventor.\(index)", from: seller.id,
                          to: try AccountRole.inventorAccount(institute: deal.sellerID, technology: deal.technologyID, index: index,
                                                                  name: inventor.name, currency: currency),
                          value, code: .inventorShare)
        }
        return requests
    }

    /// An active deal whose milestones are all settled and that earns no royalty is completed.
    static func completeIfDone(_ connection: PostgresConnection, _ id: UUID) async throws {
        try await connection.query(
            """
            UPDATE techbank.deals SET status = 'completed', updated_at = now()
             WHERE id = $1 AND status = 'active' AND (terms->>'royalty_bp')::int = 0
               AND NOT EXISTS (SELECT 1 FROM techbank.deal_milestones WHERE deal_id = $1 AND status IN ('scheduled', 'funded', 'disputed'))
            """, [id])
    }

    static func holdID(_ deal: UUID, _ part: String) -> UUID { transferID(deal, part, "hold") }

    static func transferID(_ deal: UUID, _ part: String, _ name: String) -> UUID {
        derivedID("transfer", deal.uuidString, part, name)
    }

    static let registrationColumns = "deal_id, number, contract_category, parties, certified_income, currency, signed_on, filing_due_on"

    static func decodeRegistration(_ row: PostgresRow) throws -> Registration {
        Registration(dealID: try row.decode(UUID.self, "deal_id"), number: try row.decode(String.self, "number"),
                     contractCategory: try row.decode(String.self, "contract_category"), parties: try row.decode(JSONB.self, "parties"),
                     certifiedIncome: try row.decode(Int64.self, "certified_income"), currency: try row.decode(String.self, "currency"),
                     signedOn: try row.decode(PostgresDate.self, "signed_on"), filingDueOn: try row.decode(PostgresDate?.self, "filing_due_on"))
    }

    /// The error for a signing refused by an exclusion constraint, naming a conflicting deal.
    func exclusivityConflict(_ id: UUID) async throws -> ExclusivityConflict {
        guard let deal = try await get(id) else { return ExclusivityConflict(conflictingDealID: nil, detail: "the rights overlap another deal's") }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT g.deal_id, g.kind, g.territory FROM techbank.licence_grants g JOIN techbank.deals d ON d.id = g.deal_id
                 WHERE g.technology_id = $1 AND g.deal_id <> $2
                   AND g.territory_range && ANY($3::int4range[])
                   AND g.period && daterange($4::date, $5::date, '[]')
                   AND (g.kind <> 'non_exclusive_licence' OR $6 IN ('exclusive_licence', 'assignment'))
                   AND (g.kind IN ('exclusive_licence', 'assignment') OR $6 <> 'non_exclusive_licence')
                 ORDER BY d.signed_at LIMIT 1
                """,
                [deal.technologyID, id, "{" + (deal.terms.kind == .assignment ? ["WORLD"] : deal.terms.territories).map { "\"\(Self.territoryRange($0))\"" }.joined(separator: ",") + "}",
                 deal.terms.startsOn, deal.terms.kind == .assignment ? nil : deal.terms.endsOn, deal.terms.kind.rawValue])
        }
        guard let row = rows.first else { return ExclusivityConflict(conflictingDealID: nil, detail: "the rights overlap another deal's") }
        return ExclusivityConflict(
            conflictingDealID: try row.decode(UUID.self, at: 0),
            detail: "overlaps a \(try row.decode(String.self, at: 1)) in \(try row.decode(String.self, at: 2))")
    }
}

/// The deal or milestone does not exist (answered as 404).
public struct DealNotFound: Error, Sendable {}

/// Type erasure for journal details.
struct AnyEncodable: Encodable, @unchecked Sendable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
