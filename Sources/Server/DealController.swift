import Foundation
import Hummingbird
import Ledger
import Postgres
import TechBank

/// `/v1/deals`: brokered deals between a seller institute and a buyer, paid through escrow.
///
/// A broker creates a deal for an accepted match it made; a seller institute creates one for its
/// own technology. A deal is visible to its parties (seller, buyer, broker), their sub-parks, the
/// committee and the operator; to anyone else it does not exist (404). Parties amend, propose and
/// cancel before signing; the seller and the buyer sign; the buyer funds escrow, releases
/// milestones and reports royalties; either disputes a milestone; the committee approves, resolves
/// disputes and terminates signed deals.
struct DealController: Sendable {
    let deals: Deals
    let matches: Matches
    let organizations: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    /// The most milestones a deal has, and territories it lists.
    static let maxMilestones = 50
    static let maxTerritories = 100

    // MARK: Bodies

    struct TermBody: Codable, Sendable {
        let startsOn: String
        let endsOn: String?

        enum CodingKeys: String, CodingKey {
            case startsOn = "starts_on"
            case endsOn = "ends_on"
        }

        init(startsOn: String, endsOn: String?) {
            self.startsOn = startsOn
            self.endsOn = endsOn
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(startsOn, forKey: .startsOn)
            try c.encode(endsOn, forKey: .endsOn)  // null for a term without end, not absent
        }
    }

    struct MilestoneBody: Codable, Sendable {
        let name: String
        let amount: Int64
        let dueOn: String
        let evidenceRequired: Bool?

        enum CodingKeys: String, CodingKey {
            case name, amount
            case dueOn = "due_on"
            case evidenceRequired = "evidence_required"
        }
    }

    static let termFields: Set<String> = [
        "kind", "field_of_use", "territories", "term", "currency", "upfront", "milestones", "royalty_bp", "minimum_annual_royalty",
        "sublicensing_allowed", "broker_fee_bp", "sub_park_fee_bp", "contract_category",
    ]
    static let nestedTermFields: [String: Set<String>] = ["term": ["starts_on", "ends_on"], "milestones": ["name", "amount", "due_on", "evidence_required"]]

    /// The terms as sent: all optional, so that an amendment names only what changes.
    struct TermsInput: Decodable, Sendable {
        let kind: String?
        let fieldOfUse: String?
        let territories: [String]?
        let term: TermBody?
        let currency: String?
        let upfront: Int64?
        let milestones: [MilestoneBody]?
        let royaltyBP: Int?
        let minimumAnnualRoyalty: Int64?
        let sublicensingAllowed: Bool?
        let brokerFeeBP: Int?
        let subParkFeeBP: Int?
        let contractCategory: String?

        enum CodingKeys: String, CodingKey {
            case kind, territories, term, currency, upfront, milestones
            case fieldOfUse = "field_of_use"
            case royaltyBP = "royalty_bp"
            case minimumAnnualRoyalty = "minimum_annual_royalty"
            case sublicensingAllowed = "sublicensing_allowed"
            case brokerFeeBP = "broker_fee_bp"
            case subParkFeeBP = "sub_park_fee_bp"
            case contractCategory = "contract_category"
        }
    }

    struct CreateDeal: RequestBody {
        static let knownFields: Set<String> = termFields.union(["id", "match_id", "technology_id", "seller_id", "buyer_id", "broker_id"])
        static var nestedKnownFields: [String: Set<String>] { nestedTermFields }
        let id: UUID?
        let matchID: UUID?
        let technologyID: UUID?
        let sellerID: UUID?
        let buyerID: UUID?
        let brokerID: UUID?
        let terms: TermsInput

        enum CodingKeys: String, CodingKey {
            case id
            case matchID = "match_id"
            case technologyID = "technology_id"
            case sellerID = "seller_id"
            case buyerID = "buyer_id"
            case brokerID = "broker_id"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decodeIfPresent(UUID.self, forKey: .id)
            matchID = try c.decodeIfPresent(UUID.self, forKey: .matchID)
            technologyID = try c.decodeIfPresent(UUID.self, forKey: .technologyID)
            sellerID = try c.decodeIfPresent(UUID.self, forKey: .sellerID)
            buyerID = try c.decodeIfPresent(UUID.self, forKey: .buyerID)
            brokerID = try c.decodeIfPresent(UUID.self, forKey: .brokerID)
            terms = try TermsInput(from: decoder)
        }
    }

    struct AmendDeal: RequestBody {
        static var knownFields: Set<String> { termFields }
        static var nestedKnownFields: [String: Set<String>] { nestedTermFields }
        let terms: TermsInput

        init(from decoder: any Decoder) throws { terms = try TermsInput(from: decoder) }
    }

    struct Approval: RequestBody {
        static let knownFields: Set<String> = ["decision", "reason"]
        let decision: String
        let reason: String
    }

    struct Reason: RequestBody {
        static let knownFields: Set<String> = ["reason"]
        let reason: String
    }

    /// A milestone release: the evidence of delivery (required if the milestone says so).
    struct Release: RequestBody {
        static let knownFields: Set<String> = ["evidence"]
        let evidence: String?
    }

    struct Resolution: RequestBody {
        static let knownFields: Set<String> = ["decision", "reason"]
        let decision: String
        let reason: String
    }

    struct RoyaltyInput: RequestBody {
        static let knownFields: Set<String> = ["period", "net_sales", "currency"]
        static var nestedKnownFields: [String: Set<String>] { ["period": ["from", "to"]] }
        struct Period: Decodable, Sendable {
            let from: String
            let to: String
        }
        let period: Period
        let netSales: Int64
        let currency: String

        enum CodingKeys: String, CodingKey {
            case period, currency
            case netSales = "net_sales"
        }
    }

    /// The terms fields of a deal or version, flat, as they are sent. A deal writes its
    /// milestones with their state itself; a version writes them as agreed.
    struct TermsOutput: Encodable, Sendable {
        let terms: DealTerms
        var withMilestones = false

        enum CodingKeys: String, CodingKey {
            case kind, territories, term, currency, upfront, milestones
            case fieldOfUse = "field_of_use"
            case royaltyBP = "royalty_bp"
            case minimumAnnualRoyalty = "minimum_annual_royalty"
            case sublicensingAllowed = "sublicensing_allowed"
            case brokerFeeBP = "broker_fee_bp"
            case subParkFeeBP = "sub_park_fee_bp"
            case contractCategory = "contract_category"
            case totalAmount = "total_amount"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(terms.kind.rawValue, forKey: .kind)
            try c.encode(terms.fieldOfUse, forKey: .fieldOfUse)
            try c.encode(terms.territories, forKey: .territories)
            try c.encode(TermBody(startsOn: terms.startsOn, endsOn: terms.endsOn), forKey: .term)
            try c.encode(terms.currency, forKey: .currency)
            try c.encode(terms.upfront, forKey: .upfront)
            try c.encode(terms.royaltyBP, forKey: .royaltyBP)
            try c.encode(terms.minimumAnnualRoyalty, forKey: .minimumAnnualRoyalty)
            try c.encode(terms.sublicensingAllowed, forKey: .sublicensingAllowed)
            try c.encode(terms.brokerFeeBP, forKey: .brokerFeeBP)
            try c.encode(terms.subParkFeeBP, forKey: .subParkFeeBP)
            try c.encode(terms.contractCategory.rawValue, forKey: .contractCategory)
            try c.encode(terms.total, forKey: .totalAmount)
            if withMilestones {
                try c.encode(terms.milestones.map { MilestoneBody(name: $0.name, amount: $0.amount, dueOn: $0.dueOn, evidenceRequired: $0.evidenceRequired) },
                             forKey: .milestones)
            }
        }
    }

    struct MilestoneOutput: Encodable, Sendable {
        let milestone: MilestoneState

        enum CodingKeys: String, CodingKey {
            case number, name, amount, status
            case dueOn = "due_on"
            case evidenceRequired = "evidence_required"
            case resolutionReason = "resolution_reason"
            case evidence
            case disputeReason = "dispute_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(milestone.number, forKey: .number)
            try c.encode(milestone.name, forKey: .name)
            try c.encode(milestone.amount, forKey: .amount)
            try c.encode(milestone.dueOn.description, forKey: .dueOn)
            try c.encode(milestone.evidenceRequired, forKey: .evidenceRequired)
            try c.encode(milestone.status.rawValue, forKey: .status)
            try c.encode(milestone.evidence, forKey: .evidence)
            try c.encode(milestone.disputeReason, forKey: .disputeReason)
            try c.encode(milestone.resolutionReason, forKey: .resolutionReason)
        }
    }

    struct DealBody: Encodable, Sendable {
        let deal: Deal

        enum CodingKeys: String, CodingKey {
            case id, status, version, milestones
            case technologyID = "technology_id"
            case sellerID = "seller_id"
            case buyerID = "buyer_id"
            case brokerID = "broker_id"
            case matchID = "match_id"
            case createdBy = "created_by"
            case approvalRule = "approval_rule"
            case sellerSignedAt = "seller_signed_at"
            case buyerSignedAt = "buyer_signed_at"
            case signedAt = "signed_at"
            case fundedAt = "funded_at"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        func encode(to encoder: any Encoder) throws {
            try TermsOutput(terms: deal.terms).encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(deal.id, forKey: .id)
            try c.encode(deal.technologyID, forKey: .technologyID)
            try c.encode(deal.sellerID, forKey: .sellerID)
            try c.encode(deal.buyerID, forKey: .buyerID)
            try c.encode(deal.brokerID, forKey: .brokerID)
            try c.encode(deal.matchID, forKey: .matchID)
            try c.encode(deal.createdBy, forKey: .createdBy)
            try c.encode(deal.status.rawValue, forKey: .status)
            try c.encode(deal.version, forKey: .version)
            try c.encode(deal.approvalRule, forKey: .approvalRule)
            try c.encode(deal.milestones.map(MilestoneOutput.init), forKey: .milestones)
            try c.encode(deal.sellerSignedAt, forKey: .sellerSignedAt)
            try c.encode(deal.buyerSignedAt, forKey: .buyerSignedAt)
            try c.encode(deal.signedAt, forKey: .signedAt)
            try c.encode(deal.fundedAt, forKey: .fundedAt)
            try c.encode(deal.createdAt, forKey: .createdAt)
            try c.encode(deal.updatedAt, forKey: .updatedAt)
        }
    }

    struct VersionBody: Encodable, Sendable {
        let version: DealVersion

        enum CodingKeys: String, CodingKey {
            case version, terms
            case actorID = "actor_id"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(version.version, forKey: .version)
            try c.encode(TermsOutput(terms: version.terms, withMilestones: true), forKey: .terms)
            try c.encode(version.actorID, forKey: .actorID)
            try c.encode(version.createdAt, forKey: .createdAt)
        }
    }

    struct RoyaltyBody: Encodable, Sendable {
        struct Period: Encodable, Sendable {
            let from: String
            let to: String
        }
        let id: UUID
        let dealID: UUID
        let period: Period
        let netSales: Int64
        let currency: String
        let royalty: Int64
        let minimumTopUp: Int64
        let amountPaid: Int64
        let createdAt: Date

        init(_ report: RoyaltyReport) {
            id = report.id
            dealID = report.dealID
            period = Period(from: report.from.description, to: report.to.description)
            netSales = report.netSales
            currency = report.currency
            royalty = report.royalty
            minimumTopUp = report.minimumTopUp
            amountPaid = report.royalty + report.minimumTopUp
            createdAt = report.createdAt
        }

        enum CodingKeys: String, CodingKey {
            case id, period, currency, royalty
            case dealID = "deal_id"
            case netSales = "net_sales"
            case minimumTopUp = "minimum_top_up"
            case amountPaid = "amount_paid"
            case createdAt = "created_at"
        }
    }

    struct RegistrationBody: Encodable, Sendable {
        let registration: Registration

        enum CodingKeys: String, CodingKey {
            case number, parties, currency
            case dealID = "deal_id"
            case contractCategory = "contract_category"
            case certifiedIncome = "certified_technology_income"
            case signedOn = "signed_on"
            case filingDueOn = "filing_due_on"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(registration.dealID, forKey: .dealID)
            try c.encode(registration.number, forKey: .number)
            try c.encode(registration.contractCategory, forKey: .contractCategory)
            try c.encode(try JSONValue(registration.parties), forKey: .parties)
            try c.encode(registration.certifiedIncome, forKey: .certifiedIncome)
            try c.encode(registration.currency, forKey: .currency)
            try c.encode(registration.signedOn.description, forKey: .signedOn)
            try c.encode(registration.filingDueOn?.description, forKey: .filingDueOn)
        }
    }

    // MARK: Routes

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.post("deals") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        router.get("deals") { request, context in try await list(request, context).response }
        router.get("deals/:id") { request, context in try reply(try await visible(request, context).0).response }
        router.patch("deals/:id") { request, context in try await amend(request, context).response }
        router.get("deals/:id/versions") { request, context in
            let (deal, _) = try await visible(request, context)
            return try Reply.json(PageBody(data: try await deals.versions(of: deal.id).map(VersionBody.init), nextCursor: nil)).response
        }
        router.post("deals/:id/propose") { request, context in
            let (deal, identity) = try await asParty(request, context, [.seller, .buyer, .broker])
            return try reply(try await deals.propose(deal.id, actor: identity.organizationID)).response
        }
        router.post("deals/:id/approvals") { request, context in try await approve(request, context).response }
        router.post("deals/:id/sign") { request, context in try await sign(request, context).response }
        router.post("deals/:id/escrow") { request, context in
            try await idempotency.run(request, context: context) { request, context in
                let (deal, identity) = try await asParty(request, context, [.buyer])
                return try reply(try await deals.fund(deal.id, actor: identity.organizationID))
            }
        }
        router.post("deals/:id/cancel") { request, context in
            let (deal, identity) = try await visible(request, context)
            let party = deal.parties.contains(identity.organizationID)
            guard party || identity.kind == .committee else {
                throw APIError(.forbidden, code: "forbidden", "only the deal's parties or the committee cancel it")
            }
            return try reply(try await deals.cancel(deal.id, actor: identity.organizationID, byCommittee: identity.kind == .committee)).response
        }
        router.post("deals/:id/milestones/:number/release") { request, context in
            try await idempotency.run(request, context: context) { request, context in
                let (deal, identity) = try await asParty(request, context, [.buyer])
                let number = try milestone(request, context, deal)
                var request = request
                let evidence = try await request.decodeIfPresent(Release.self, maxBytes: maxBodyBytes)?.evidence
                    .map { try ClientText.trimmed($0, field: "evidence", max: 2_000) }
                return try reply(try await deals.release(deal.id, milestone: number, evidence: evidence, actor: identity.organizationID))
            }
        }
        router.post("deals/:id/milestones/:number/dispute") { request, context in
            let (deal, identity) = try await asParty(request, context, [.seller, .buyer])
            let number = try milestone(request, context, deal)
            var request = request
            let body = try await request.decode(Reason.self, maxBytes: maxBodyBytes)
            let reason = try ClientText.trimmed(body.reason, field: "reason", max: 2_000)
            return try reply(try await deals.dispute(deal.id, milestone: number, reason: reason, actor: identity.organizationID)).response
        }
        router.post("deals/:id/milestones/:number/resolve") { request, context in try await resolve(request, context).response }
        router.post("deals/:id/royalty-reports") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await reportRoyalty(request, context) }
        }
        router.get("deals/:id/royalty-reports") { request, context in
            let (deal, _) = try await visible(request, context)
            return try Reply.json(PageBody(data: try await deals.royaltyReports(of: deal.id).map(RoyaltyBody.init), nextCursor: nil)).response
        }
        router.get("deals/:id/registration") { request, context in
            let (deal, _) = try await visible(request, context)
            guard let registration = try await deals.registration(of: deal.id) else { throw APIError.notFound }
            return try Reply.json(RegistrationBody(registration: registration)).response
        }
        router.get("filings/due") { request, context in try await filingsDue(request, context).response }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateDeal.self, maxBytes: maxBodyBytes)
        let technologyID: UUID, sellerID: UUID, buyerID: UUID, brokerID: UUID?
        switch identity.kind {
        case .broker:
            guard let matchID = body.matchID else { throw APIError.validation("match_id", "is required: a broker creates a deal for an accepted match it made") }
            guard let match = try await matches.get(matchID), match.brokerID == identity.organizationID, match.status == .accepted else {
                throw APIError.validation("match_id", "must name an accepted match this broker made")
            }
            for (field, value, expected) in [("technology_id", body.technologyID, match.technologyID), ("seller_id", body.sellerID, match.sellerID),
                                             ("buyer_id", body.buyerID, match.buyerID), ("broker_id", body.brokerID, identity.organizationID)] {
                if let value, value != expected { throw APIError.validation(field, "must match the match's \(field) or be left out") }
            }
            (technologyID, sellerID, buyerID, brokerID) = (match.technologyID, match.sellerID, match.buyerID, identity.organizationID)
        case .institute:
            guard body.sellerID == nil || body.sellerID == identity.organizationID else {
                throw APIError(.forbidden, code: "forbidden", "an institute creates deals only as the seller")
            }
            guard let technology = body.technologyID else { throw APIError.validation("technology_id", "is required") }
            guard let buyer = body.buyerID else { throw APIError.validation("buyer_id", "is required") }
            if let broker = body.brokerID {
                guard try await organizations.get(broker)?.kind == .broker else { throw APIError.validation("broker_id", "must name a broker") }
            }
            if let matchID = body.matchID {
                guard let match = try await matches.get(matchID), match.sellerID == identity.organizationID, match.status == .accepted,
                      match.technologyID == technology, match.buyerID == buyer else {
                    throw APIError.validation("match_id", "must name an accepted match of this technology and buyer")
                }
            }
            (technologyID, sellerID, buyerID, brokerID) = (technology, identity.organizationID, buyer, body.brokerID)
        default:
            throw APIError(.forbidden, code: "forbidden", "deals are created by a broker (for its match) or by the seller institute")
        }
        let terms = try Self.terms(body.terms, over: nil)
        let deal = try await deals.create(id: body.id ?? UUID(), technologyID: technologyID, sellerID: sellerID, buyerID: buyerID, brokerID: brokerID,
                                          matchID: body.matchID, terms: terms, actor: identity.organizationID)
        var reply = try reply(deal, status: .created)
        reply.headers[.location] = "/v1/deals/\(deal.id.uuidString.lowercased())"
        return reply
    }

    func list(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursorText) = try request.page()
        let status = try request.enumQuery(DealStatus.self, "status")
        let technologyID = try request.uuidQuery("technology_id")
        let page = try await deals.list(visibleTo: identity, status: status, technologyID: technologyID, limit: limit,
                                        after: try cursorText.map(TimeCursor.decode))
        return try Reply.json(PageBody(data: page.items.map(DealBody.init), nextCursor: page.next.map(TimeCursor.encode)))
    }

    func amend(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (deal, identity) = try await asParty(request, context, [.seller, .buyer, .broker])
        var request = request
        let body = try await request.decode(AmendDeal.self, maxBytes: maxBodyBytes)
        let terms = try Self.terms(body.terms, over: deal.terms)
        try request.requireIfMatch(versionETag(deal.version))
        return try reply(try await deals.amend(deal.id, terms: terms, expectedVersion: deal.version, actor: identity.organizationID))
    }

    func approve(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (deal, identity) = try await visible(request, context)
        guard identity.kind == .committee else { throw APIError(.forbidden, code: "forbidden", "only the committee approves deals") }
        var request = request
        let body = try await request.decode(Approval.self, maxBytes: maxBodyBytes)
        guard ["approve", "reject"].contains(body.decision) else { throw APIError.validation("decision", "must be approve or reject") }
        let reason = try ClientText.trimmed(body.reason, field: "reason", max: 2_000)
        return try reply(try await deals.decide(deal.id, approve: body.decision == "approve", reason: reason, committee: identity.organizationID))
    }

    func sign(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (deal, identity) = try await asParty(request, context, [.seller, .buyer])
        do {
            return try reply(try await deals.sign(deal.id, party: identity.organizationID))
        } catch let conflict as ExclusivityConflict {
            var named: UUID?
            if let other = conflict.conflictingDealID, let otherDeal = try await deals.get(other), try await canSee(otherDeal, identity) { named = other }
            let detail = "the rights this deal grants conflict with another deal: " + conflict.detail + (named.map { " (deal \($0.uuidString.lowercased()))" } ?? "")
            var error = APIError(.conflict, code: "exclusivity_conflict", detail, errors: [.init(field: "territories", message: conflict.detail)])
            error.conflictingDealID = named
            throw error
        }
    }

    func resolve(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (deal, identity) = try await visible(request, context)
        guard identity.kind == .committee else { throw APIError(.forbidden, code: "forbidden", "only the committee resolves disputes") }
        let number = try milestone(request, context, deal)
        var request = request
        let body = try await request.decode(Resolution.self, maxBytes: maxBodyBytes)
        guard ["release", "refund"].contains(body.decision) else { throw APIError.validation("decision", "must be release or refund") }
        let reason = try ClientText.trimmed(body.reason, field: "reason", max: 2_000)
        return try reply(try await deals.resolve(deal.id, milestone: number, release: body.decision == "release", reason: reason,
                                                 committee: identity.organizationID))
    }

    @Sendable func reportRoyalty(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (deal, identity) = try await asParty(request, context, [.buyer])
        var request = request
        let body = try await request.decode(RoyaltyInput.self, maxBytes: maxBodyBytes)
        guard let from = PostgresDate(iso8601: body.period.from) else { throw APIError.validation("period.from", "must be a date such as 2027-01-01") }
        guard let to = PostgresDate(iso8601: body.period.to) else { throw APIError.validation("period.to", "must be a date such as 2027-03-31") }
        guard from <= to else { throw APIError.validation("period.to", "must not be before period.from") }
        guard to <= PostgresDate.today() else { throw APIError.validation("period.to", "must not be in the future") }
        guard (0...LedgerController.maxAmount).contains(body.netSales) else { throw APIError.validation("net_sales", "must be 0 to 2^53 minor units") }
        guard CurrencyCode(body.currency) != nil else { throw APIError.validation("currency", "must be an ISO 4217 code such as CNY") }
        let report = try await deals.reportRoyalty(deal.id, from: from, to: to, netSales: body.netSales, currency: body.currency, actor: identity.organizationID)
        return try Reply.json(RoyaltyBody(report), status: .created)
    }

    func filingsDue(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursor) = try request.page()
        let before = try request.dateQuery("before") ?? PostgresDate(daysSince2000: PostgresDate.today().daysSince2000 + 30)
        let page = try await deals.filingsDue(visibleTo: identity, before: before, limit: limit, offset: try Cursor.offset(cursor, max: Deals.maxOffset))
        return try Reply.json(PageBody(data: page.items.map(RegistrationBody.init), nextCursor: Cursor.next(offset: page.nextOffset, max: Deals.maxOffset)))
    }

    // MARK: Rules

    enum Role { case seller, buyer, broker }

    /// The deal named by `:id` if the caller may see it; 404 otherwise.
    func visible(_ request: Request, _ context: AppRequestContext) async throws -> (Deal, Identity) {
        let identity = try context.requireIdentity()
        guard let deal = try await deals.get(request.uuidParameter("id", context)), try await canSee(deal, identity) else { throw APIError.notFound }
        return (deal, identity)
    }

    /// The deal, if the caller plays one of `roles` in it: 404 if invisible, 403 otherwise.
    func asParty(_ request: Request, _ context: AppRequestContext, _ roles: Set<Role>) async throws -> (Deal, Identity) {
        let (deal, identity) = try await visible(request, context)
        let me = identity.organizationID
        let plays = (roles.contains(.seller) && deal.sellerID == me) || (roles.contains(.buyer) && deal.buyerID == me)
            || (roles.contains(.broker) && deal.brokerID == me)
        guard plays else {
            let names = [(Role.seller, "seller"), (.buyer, "buyer"), (.broker, "broker")].filter { roles.contains($0.0) }.map(\.1)
            throw APIError(.forbidden, code: "forbidden", "only the deal's \(names.joined(separator: " or ")) may do this")
        }
        return (deal, identity)
    }

    func canSee(_ deal: Deal, _ identity: Identity) async throws -> Bool {
        identity.canSee(deal, subParks: [try await organizations.subPark(of: deal.sellerID, seenBy: identity),
                                         try await organizations.subPark(of: deal.buyerID, seenBy: identity)])
    }

    /// The milestone number in the path; one the deal does not have is a 404.
    func milestone(_ request: Request, _ context: AppRequestContext, _ deal: Deal) throws -> Int {
        guard let text = context.parameters.get("number"), let number = Int(text), deal.milestones.contains(where: { $0.number == number }) else {
            throw APIError.notFound
        }
        return number
    }

    func reply(_ deal: Deal, status: HTTPResponse.Status = .ok) throws -> Reply {
        var reply = try Reply.json(DealBody(deal: deal), status: status)
        reply.headers[.eTag] = versionETag(deal.version)
        return reply
    }

    /// Validated terms: `input` over `base` (an amendment), or complete on their own (nil base).
    static func terms(_ input: TermsInput, over base: DealTerms?) throws -> DealTerms {
        func required<T>(_ value: T?, _ current: T?, _ field: String) throws -> T {
            guard let value = value ?? current else { throw APIError.validation(field, "is required") }
            return value
        }
        let kindText = try required(input.kind, base?.kind.rawValue, "kind")
        guard let kind = DealKind(rawValue: kindText) else {
            throw APIError.validation("kind", "must be one of \(DealKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let fieldOfUse = try ClientText.trimmed(try required(input.fieldOfUse, base?.fieldOfUse, "field_of_use"), field: "field_of_use", max: 500)
        let territories = try required(input.territories, base?.territories, "territories")
        guard (1...maxTerritories).contains(territories.count) else { throw APIError.validation("territories", "list 1 to \(maxTerritories) territories") }
        guard Set(territories).count == territories.count else { throw APIError.validation("territories", "must not repeat a territory") }
        if territories.contains("WORLD") && territories.count > 1 { throw APIError.validation("territories", "WORLD stands alone") }
        for (index, territory) in territories.enumerated()
        where territory != "WORLD" && !(territory.utf8.count == 2 && territory.utf8.allSatisfy { (65...90).contains($0) }) {
            throw APIError.validation("territories[\(index)]", "must be an ISO 3166-1 alpha-2 code such as CN, or WORLD")
        }
        let startsOn = try required(input.term?.startsOn, base?.startsOn, "term.starts_on")
        guard let start = PostgresDate(iso8601: startsOn) else { throw APIError.validation("term.starts_on", "must be a date such as 2027-01-01") }
        let endsOn = input.term.map { $0.endsOn } ?? base?.endsOn
        if let endsOn {
            guard let end = PostgresDate(iso8601: endsOn) else { throw APIError.validation("term.ends_on", "must be a date such as 2031-12-31") }
            guard end >= start else { throw APIError.validation("term.ends_on", "must not be before term.starts_on") }
        }
        let currency = try required(input.currency, base?.currency, "currency")
        guard CurrencyCode(currency) != nil else { throw APIError.validation("currency", "must be an ISO 4217 code such as CNY") }
        let upfront = input.upfront ?? base?.upfront ?? 0
        guard (0...LedgerController.maxAmount).contains(upfront) else { throw APIError.validation("upfront", "must be 0 to 2^53 minor units") }
        let milestones: [MilestoneTerms]
        if let bodies = input.milestones {
            guard bodies.count <= maxMilestones else { throw APIError.validation("milestones", "list at most \(maxMilestones) milestones") }
            milestones = try bodies.enumerated().map { index, body in
                let prefix = "milestones[\(index)]."
                let name = try ClientText.trimmed(body.name, field: prefix + "name", max: 200)
                guard (1...LedgerController.maxAmount).contains(body.amount) else { throw APIError.validation(prefix + "amount", "must be 1 to 2^53 minor units") }
                guard PostgresDate(iso8601: body.dueOn) != nil else { throw APIError.validation(prefix + "due_on", "must be a date such as 2027-06-30") }
                return MilestoneTerms(name: name, amount: body.amount, dueOn: body.dueOn, evidenceRequired: body.evidenceRequired ?? false)
            }
        } else {
            milestones = base?.milestones ?? []
        }
        guard milestones.reduce(upfront, { $0 + $1.amount }) <= LedgerController.maxAmount else {
            throw APIError.validation("milestones", "upfront and milestones together must be at most 2^53 minor units")
        }
        func basisPoints(_ value: Int?, _ current: Int?, _ field: String) throws -> Int {
            let bp = value ?? current ?? 0
            guard (0...10_000).contains(bp) else { throw APIError.validation(field, "must be 0 to 10000 basis points") }
            return bp
        }
        let royaltyBP = try basisPoints(input.royaltyBP, base?.royaltyBP, "royalty_bp")
        let brokerFeeBP = try basisPoints(input.brokerFeeBP, base?.brokerFeeBP, "broker_fee_bp")
        let subParkFeeBP = try basisPoints(input.subParkFeeBP, base?.subParkFeeBP, "sub_park_fee_bp")
        guard brokerFeeBP + subParkFeeBP <= 10_000 else { throw APIError.validation("sub_park_fee_bp", "fees together must not exceed 10000 basis points") }
        let minimum = input.minimumAnnualRoyalty ?? base?.minimumAnnualRoyalty ?? 0
        guard (0...LedgerController.maxAmount).contains(minimum) else {
            throw APIError.validation("minimum_annual_royalty", "must be 0 to 2^53 minor units")
        }
        if minimum > 0 && royaltyBP == 0 { throw APIError.validation("minimum_annual_royalty", "needs a royalty_bp above 0") }
        let categoryText = try required(input.contractCategory, base?.contractCategory.rawValue, "contract_category")
        guard let category = ContractCategory(rawValue: categoryText) else {
            throw APIError.validation("contract_category", "must be one of \(ContractCategory.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return DealTerms(kind: kind, fieldOfUse: fieldOfUse, territories: kind == .assignment ? ["WORLD"] : territories, startsOn: startsOn,
                         endsOn: kind == .assignment ? nil : endsOn, currency: currency, upfront: upfront, milestones: milestones, royaltyBP: royaltyBP,
                         minimumAnnualRoyalty: minimum, sublicensingAllowed: input.sublicensingAllowed ?? base?.sublicensingAllowed ?? false,
                         brokerFeeBP: brokerFeeBP, subParkFeeBP: subParkFeeBP, contractCategory: category)
    }
}

/// Keyset cursors over `(created_at, id)`, newest first.
enum TimeCursor {
    /// The cursor of the page after `position`.
    static func encode(_ position: (Date, UUID)) -> String {
        Cursor.encode("\(RFC3339.format(position.0))|\(position.1.uuidString)")
    }

    /// The position `cursor` holds; 422 naming `cursor` for anything `encode` could not have made.
    static func decode(_ cursor: String) throws -> (Date, UUID) {
        let text = try Cursor.decode(cursor)
        guard let bar = text.firstIndex(of: "|"), let id = UUID(uuidString: String(text[text.index(after: bar)...])) else { throw Cursor.invalid }
        do {
            return (try RFC3339.date(from: text[..<bar]), id)
        } catch {
            throw APIError.validation("cursor", "is not a cursor this API returned: its time \(error.message)")
        }
    }
}
