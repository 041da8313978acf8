import Foundation
import Postgres

/// Where a technology is in its life: registered → in custody → listed → licensed or assigned;
/// withdrawn from any state but assigned.
public enum TechnologyStatus: String, Sendable, Codable, CaseIterable {
    case registered
    case inCustody = "in_custody"
    case listed
    case licensed
    case assigned
    case withdrawn
}

/// The explicit lifecycle moves exposed over HTTP.
public enum TechnologyTransition: String, Sendable, CaseIterable {
    /// Deposit with the bank: registered → in_custody.
    case custody
    /// Offer on the market: in_custody → listed.
    case listing
    /// Take off the market: any state except assigned and withdrawn → withdrawn.
    case withdraw

    var from: Set<TechnologyStatus> {
        switch self {
        case .custody: [.registered]
        case .listing: [.inCustody]
        case .withdraw: [.registered, .inCustody, .listed, .licensed]
        }
    }

    var verb: String {
        switch self {
        case .custody: "take into custody"
        case .listing: "list"
        case .withdraw: "withdraw"
        }
    }

    var to: TechnologyStatus {
        switch self {
        case .custody: .inCustody
        case .listing: .listed
        case .withdraw: .withdrawn
        }
    }
}

public struct Inventor: Sendable, Codable, Equatable {
    public let name: String
    /// Share of the inventors' part, in basis points; all shares sum to 10000.
    public let shareBP: Int

    public init(name: String, shareBP: Int) {
        self.name = name
        self.shareBP = shareBP
    }

    enum CodingKeys: String, CodingKey {
        case name
        case shareBP = "share_bp"
    }
}

public struct IPRight: Sendable, Equatable {
    public static let types = ["patent", "utility_model", "design", "software_copyright", "ic_layout", "plant_variety", "technical_secret"]
    public static let statuses = ["pending", "granted", "lapsed", "expired", "revoked"]

    public let id: UUID
    public let type: String
    /// WIPO ST.3 office code, e.g. CN, US, EP.
    public let office: String
    /// The number as given.
    public let number: String
    /// The number as compared: see `normalize(number:office:)`.
    public let normalizedNumber: String
    /// WIPO ST.16 kind code, e.g. A, B, U, B1.
    public let kindCode: String?
    public let status: String
    public let filedOn: PostgresDate?
    public let grantedOn: PostgresDate?
    public let expiresOn: PostgresDate?

    public init(id: UUID = UUID(), type: String, office: String, number: String, kindCode: String?, status: String,
                filedOn: PostgresDate?, grantedOn: PostgresDate?, expiresOn: PostgresDate?) {
        self.id = id
        self.type = type
        self.office = office
        self.number = number
        self.normalizedNumber = Self.normalize(number: number, office: office)
        self.kindCode = kindCode
        self.status = status
        self.filedOn = filedOn
        self.grantedOn = grantedOn
        self.expiresOn = expiresOn
    }

    /// The comparable form of a right's number: upper case, without spaces, hyphens, commas or
    /// slashes, without a leading office code or the Chinese `ZL` prefix. So `CN 2020 1 0123456.7`,
    /// `CN202010123456.7` and `ZL 202010123456.7` are one right.
    public static func normalize(number: String, office: String) -> String {
        var text = number.uppercased().filter { !$0.isWhitespace && !"-,/".contains($0) }
        for prefix in [office.uppercased(), "ZL"] where text.hasPrefix(prefix) && text.count > prefix.count {
            text.removeFirst(prefix.count)
        }
        return text
    }
}

public struct Technology: Sendable, Equatable {
    public let id: UUID
    public let ownerID: UUID
    public let title: String
    public let summary: String
    /// Confidential: shown only to those `Identity.canReadConfidential` allows.
    public let description: String
    public let field: String
    public let keywords: [String]
    public let trl: Int
    /// Whether an accredited verification evidenced the TRL.
    public let trlVerified: Bool
    public let inventors: [Inventor]
    public let askingTerms: JSONB?
    public let status: TechnologyStatus
    public let version: Int
    public let createdAt: Date
    public let updatedAt: Date
    public let ipRights: [IPRight]
}

/// What an institute registers.
public struct NewTechnology: Sendable {
    public var id = UUID()
    public var ownerID: UUID
    public var title: String
    public var summary: String
    public var description: String
    public var field: String
    public var keywords: [String]
    public var trl: Int
    public var inventors: [Inventor]
    public var ipRights: [IPRight]
    public var askingTerms: JSONB?

    public init(ownerID: UUID, title: String, summary: String, description: String, field: String, keywords: [String],
                trl: Int, inventors: [Inventor], ipRights: [IPRight], askingTerms: JSONB?) {
        self.ownerID = ownerID
        self.title = title
        self.summary = summary
        self.description = description
        self.field = field
        self.keywords = keywords
        self.trl = trl
        self.inventors = inventors
        self.ipRights = ipRights
        self.askingTerms = askingTerms
    }
}

/// A change to a technology's descriptive fields (nil: unchanged).
public struct TechnologyChanges: Sendable {
    public var title: String?
    public var summary: String?
    public var description: String?
    public var keywords: [String]?
    public var trl: Int?
    public var askingTerms: JSONB?

    public init(title: String? = nil, summary: String? = nil, description: String? = nil, keywords: [String]? = nil, trl: Int? = nil, askingTerms: JSONB? = nil) {
        self.title = title
        self.summary = summary
        self.description = description
        self.keywords = keywords
        self.trl = trl
        self.askingTerms = askingTerms
    }
}

/// One entry of a technology's history.
public struct TechnologyHistoryEntry: Sendable, Equatable {
    public let version: Int
    public let event: String
    public let actorID: UUID
    public let changedAt: Date
    public let changes: JSONB
}

/// A verification of a claim about a technology by an accredited lab.
public struct Verification: Sendable, Equatable {
    public let id: UUID
    public let technologyID: UUID
    public let verifierID: UUID
    public let claim: String
    public let method: String
    public let confirmed: Bool
    public let trlEvidenced: Int
    /// SHA-256 of the lab's report, lower-case hex.
    public let reportSHA256: String?
    public let createdAt: Date
}

/// A field of the taxonomy.
public struct Field: Sendable, Equatable {
    public let code: String
    public let nameEN: String
    public let nameZH: String
}

/// A search over technologies.
public struct TechnologyQuery: Sendable {
    public var text: String?
    public var field: String?
    public var trlMin: Int?
    public var trlMax: Int?
    public var status: TechnologyStatus?
    public var subParkID: UUID?
    public var ownerID: UUID?

    public init() {}
}

extension Identity {
    /// Who may read a technology at all: its owner, the owner's sub-park, the operator and the
    /// committee; everyone else only once it is listed.
    public func canSee(_ technology: Technology, ownerSubParkID: UUID?) -> Bool {
        canSee(organizationID: technology.ownerID, memberOf: ownerSubParkID) || technology.status == .listed
    }

    /// Who may read the confidential description: the owner, the operator and the committee.
    public func canReadConfidential(_ technology: Technology) -> Bool {
        readsEverything || technology.ownerID == organizationID
    }
}

/// The technology registry.
public struct Technologies: Sendable {
    /// The most results a search skips through (offset cursors beyond it are refused).
    public static let maxSearchOffset = 10_000

    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    public func fields() async throws -> [Field] {
        let rows = try await pool.withConnection { try await $0.query("SELECT code, name_en, name_zh FROM techbank.fields ORDER BY code") }
        return try rows.map { Field(code: try $0.decode(String.self, at: 0), nameEN: try $0.decode(String.self, at: 1), nameZH: try $0.decode(String.self, at: 2)) }
    }

    /// Registers a technology with its IP rights, records version 1 in its history and journals it.
    /// - Throws: `TechBankError` `.validation` for an unknown field or bad inventor shares,
    ///   `.conflict` (with `holderID`) for an IP right already registered to another technology.
    public func register(_ new: NewTechnology, actor: UUID) async throws -> Technology {
        let inventors = try Self.checkedInventors(new.inventors)
        do {
            try await pool.withTransaction { connection in
                try await connection.query(
                    """
                    INSERT INTO techbank.technologies (id, owner_id, title, summary, description, field, keywords, trl, inventors, asking_terms, search_text)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    """,
                    [new.id, new.ownerID, new.title, new.summary, new.description, new.field, new.keywords, Int16(new.trl),
                     try JSONB(encoding: inventors), new.askingTerms, Self.searchText(new.title, new.summary, new.keywords)])
                for right in new.ipRights {
                    try await connection.query(
                        """
                        INSERT INTO techbank.ip_rights (id, technology_id, type, office, number, normalized_number, kind_code, status, filed_on, granted_on, expires_on)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                        """,
                        [right.id, new.id, right.type, right.office, right.number, right.normalizedNumber, right.kindCode, right.status,
                         right.filedOn, right.grantedOn, right.expiresOn])
                }
                try await Self.record(connection, technologyID: new.id, version: 1, event: "registered", actor: actor,
                                      changes: "SELECT jsonb_build_object('title', title, 'field', field, 'trl', trl, 'status', status) FROM techbank.technologies WHERE id = $1")
            }
        } catch let error as PostgresError where error.constraint == "ip_rights_one_holder" {
            throw try await ipRightTaken(new.ipRights)
        } catch let error as PostgresError where error.constraint == "technologies_field_fkey" {
            throw TechBankError(.validation, field: "field", "not a field of the taxonomy (GET /v1/fields)")
        } catch let error as PostgresError where error.constraint == "technologies_pkey" {
            throw TechBankError(.conflict, field: "id", "a technology with this id exists")
        }
        guard let technology = try await get(new.id) else { throw TechBankError(.conflict, field: "id", "the technology vanished") }
        return technology
    }

    public func get(_ id: UUID) async throws -> Technology? {
        try await pool.withConnection { connection in
            let rows = try await connection.query("SELECT \(Self.columns) FROM techbank.technologies WHERE id = $1", [id])
            guard let row = rows.first else { return nil }
            return try Self.decode(row, rights: try await Self.rights(connection, of: [id])[id] ?? [])
        }
    }

    /// Technologies `identity` may see that match `query`; by relevance when searching text, else
    /// newest first. `offset` comes from the previous page's cursor.
    public func search(_ query: TechnologyQuery, visibleTo identity: Identity, limit: Int, offset: Int) async throws -> (items: [Technology], nextOffset: Int?) {
        let text = query.text?.trimmingCharacters(in: .whitespacesAndNewlines)
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(qualified(Self.columns, by: "t"))
                  FROM techbank.technologies t JOIN techbank.organizations o ON o.id = t.owner_id
                 WHERE ($1 OR t.owner_id = $2 OR o.sub_park_id = $2 OR t.status = 'listed')
                   AND ($3::text IS NULL OR t.search_text ILIKE $12 OR $3 <% t.search_text)
                   AND ($4::text IS NULL OR t.field = $4)
                   AND ($5::int2 IS NULL OR t.trl >= $5) AND ($6::int2 IS NULL OR t.trl <= $6)
                   AND ($7::text IS NULL OR t.status = $7)
                   AND ($8::uuid IS NULL OR o.sub_park_id = $8)
                   AND ($9::uuid IS NULL OR t.owner_id = $9)
                 ORDER BY CASE WHEN $3::text IS NULL THEN 0
                               ELSE (t.search_text ILIKE $12)::int + word_similarity($3, t.search_text) END DESC,
                          t.created_at DESC, t.id
                 LIMIT $10 OFFSET $11
                """,
                [identity.readsEverything, identity.organizationID, text?.isEmpty == false ? text : nil, query.field,
                 query.trlMin.map { Int16($0) }, query.trlMax.map { Int16($0) }, query.status?.rawValue, query.subParkID, query.ownerID,
                 Int64(limit + 1), Int64(offset), Self.likePattern(text)])
        }
        let page = Array(rows.prefix(limit))
        let ids = try page.map { try $0.decode(UUID.self, "id") }
        let rights = try await pool.withConnection { try await Self.rights($0, of: ids) }
        let items = try page.enumerated().map { index, row in try Self.decode(row, rights: rights[ids[index]] ?? []) }
        return (items, rows.count > limit ? offset + limit : nil)
    }

    /// Moves a technology through its lifecycle.
    /// - Throws: `TechBankError.conflict` naming the current state when the move is not allowed from it.
    public func transition(_ id: UUID, _ transition: TechnologyTransition, actor: UUID) async throws -> Technology? {
        let moved = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query("SELECT status FROM techbank.technologies WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            let current = try row.decode(String.self, at: 0)
            guard let status = TechnologyStatus(rawValue: current), transition.from.contains(status) else {
                throw TechBankError(.illegalTransition, field: "status", "cannot \(transition.verb) a technology that is \(current)")
            }
            let version = try await connection.query(
                "UPDATE techbank.technologies SET status = $2, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
                [id, transition.to.rawValue])[0].decode(Int32.self, at: 0)
            try await Self.record(connection, technologyID: id, version: Int(version), event: transition.rawValue, actor: actor,
                                  changes: "SELECT jsonb_build_object('status', status) FROM techbank.technologies WHERE id = $1")
            return true
        }
        return moved ? try await get(id) : nil
    }

    /// Applies `changes` if the technology is still at `expectedVersion`.
    /// - Throws: `TechBankError.preconditionFailed` if it moved on.
    public func update(_ id: UUID, _ changes: TechnologyChanges, expectedVersion: Int, actor: UUID) async throws -> Technology? {
        let updated = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query("SELECT version, title, summary, keywords FROM techbank.technologies WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            guard try row.decode(Int.self, at: 0) == expectedVersion else {
                throw TechBankError(.preconditionFailed, "the technology has changed; fetch it again")
            }
            let title = try changes.title ?? row.decode(String.self, at: 1)
            let summary = try changes.summary ?? row.decode(String.self, at: 2)
            let keywords = try changes.keywords ?? row.decode([String].self, at: 3)
            try await connection.query(
                """
                UPDATE techbank.technologies
                   SET title = $2, summary = $3, description = coalesce($4, description), keywords = $5,
                       trl = coalesce($6, trl), trl_verified = trl_verified AND coalesce($6, trl) = trl,
                       asking_terms = coalesce($7, asking_terms), search_text = $8, version = version + 1, updated_at = now()
                 WHERE id = $1
                """,
                [id, title, summary, changes.description, keywords, changes.trl.map { Int16($0) }, changes.askingTerms,
                 Self.searchText(title, summary, keywords)])
            var changed: [String: JSONB] = [:]
            if let value = changes.title { changed["title"] = try JSONB(encoding: value) }
            if let value = changes.summary { changed["summary"] = try JSONB(encoding: value) }
            if changes.description != nil { changed["description"] = JSONB("\"(confidential; changed)\"") }
            if let value = changes.keywords { changed["keywords"] = try JSONB(encoding: value) }
            if let value = changes.trl { changed["trl"] = try JSONB(encoding: value) }
            if let value = changes.askingTerms { changed["asking_terms"] = value }
            let payload = "{" + changed.sorted(by: { $0.key < $1.key }).map { "\"\($0.key)\":\($0.value.text)" }.joined(separator: ",") + "}"
            try await Self.record(connection, technologyID: id, version: expectedVersion + 1, event: "updated", actor: actor,
                                  changes: "SELECT $2::jsonb", bind: JSONB(payload))
            return true
        }
        return updated ? try await get(id) : nil
    }

    /// Records a verification. A confirmed one evidences its TRL: the technology's TRL becomes
    /// verified, and rises to `trlEvidenced` if that is higher.
    public func verify(_ id: UUID, verifier: UUID, claim: String, method: String, confirmed: Bool, trlEvidenced: Int, reportSHA256: String?) async throws -> Verification? {
        let verificationID = UUID()
        let recorded = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query("SELECT trl FROM techbank.technologies WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            let trl = try row.decode(Int.self, at: 0)
            try await connection.query(
                """
                INSERT INTO techbank.verifications (id, technology_id, verifier_id, claim, method, result, trl_evidenced, report_sha256)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """,
                [verificationID, id, verifier, claim, method, confirmed ? "confirmed" : "not_confirmed", Int16(trlEvidenced), reportSHA256])
            try await connection.query(
                """
                SELECT ledger.journal_append('verification_recorded', technology_id, jsonb_build_object(
                           'verification_id', id, 'verifier_id', verifier_id, 'claim', claim, 'method', method, 'result', result,
                           'trl_evidenced', trl_evidenced, 'report_sha256', report_sha256))
                  FROM techbank.verifications WHERE id = $1
                """, [verificationID])
            guard confirmed, trlEvidenced >= trl else { return true }
            let version = try await connection.query(
                "UPDATE techbank.technologies SET trl = $2, trl_verified = true, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
                [id, Int16(trlEvidenced)])[0].decode(Int32.self, at: 0)
            try await Self.record(
                connection, technologyID: id, version: Int(version), event: "verified", actor: verifier,
                changes: "SELECT jsonb_build_object('trl', trl, 'trl_verified', trl_verified, 'verification_id', $2::uuid) FROM techbank.technologies WHERE id = $1",
                bind: verificationID)
            return true
        }
        guard recorded else { return nil }
        return try await verifications(of: id).first { $0.id == verificationID }
    }

    public func verifications(of id: UUID) async throws -> [Verification] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT id, technology_id, verifier_id, claim, method, result, trl_evidenced, report_sha256, created_at
                  FROM techbank.verifications WHERE technology_id = $1 ORDER BY created_at, id
                """, [id])
        }
        return try rows.map {
            Verification(id: try $0.decode(UUID.self, at: 0), technologyID: try $0.decode(UUID.self, at: 1), verifierID: try $0.decode(UUID.self, at: 2),
                         claim: try $0.decode(String.self, at: 3), method: try $0.decode(String.self, at: 4),
                         confirmed: try $0.decode(String.self, at: 5) == "confirmed", trlEvidenced: try $0.decode(Int.self, at: 6),
                         reportSHA256: try $0.decode(String?.self, at: 7), createdAt: try $0.decode(Date.self, at: 8))
        }
    }

    public func history(_ id: UUID) async throws -> [TechnologyHistoryEntry] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT version, event, actor_id, changed_at, changes FROM techbank.technology_history WHERE technology_id = $1 ORDER BY version", [id])
        }
        return try rows.map {
            TechnologyHistoryEntry(version: try $0.decode(Int.self, at: 0), event: try $0.decode(String.self, at: 1), actorID: try $0.decode(UUID.self, at: 2),
                                   changedAt: try $0.decode(Date.self, at: 3), changes: try $0.decode(JSONB.self, at: 4))
        }
    }

    // MARK: Internals

    static let columns = "id, owner_id, title, summary, description, field, keywords, trl, trl_verified, inventors, asking_terms, status, version, created_at, updated_at"

    /// The inventors with their names trimmed (`ClientText`), or `.validation` naming the first
    /// bad one: 1 to 100 inventors, each share 1 to 10000 basis points, all shares summing to 10000.
    static func checkedInventors(_ inventors: [Inventor]) throws -> [Inventor] {
        guard (1...100).contains(inventors.count) else { throw TechBankError(.validation, field: "inventors", "list 1 to 100 inventors") }
        let checked = try inventors.enumerated().map { index, inventor in
            let name = try ClientText.trimmed(inventor.name, field: "inventors[\(index)].name", max: 200)
            guard (1...10_000).contains(inventor.shareBP) else {
                throw TechBankError(.validation, field: "inventors[\(index)].share_bp", "must be 1 to 10000 basis points")
            }
            return Inventor(name: name, shareBP: inventor.shareBP)
        }
        let total = checked.reduce(0) { $0 + $1.shareBP }
        guard total == 10_000 else {
            throw TechBankError(.validation, field: "inventors", "shares must sum to exactly 10000 basis points (they sum to \(total))")
        }
        return checked
    }

    /// `%text%` with LIKE's wildcards and escape character in `text` escaped.
    static func likePattern(_ text: String?) -> String {
        let escaped = (text ?? "").replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
        return "%" + escaped + "%"
    }

    static func searchText(_ title: String, _ summary: String, _ keywords: [String]) -> String {
        ([title, summary] + keywords).joined(separator: " ")
    }

    /// Appends a history entry whose `changes` come from `changes` (a query on the technology as
    /// `$1`, with `bind` as `$2` if given), and the same event to the audit journal.
    static func record(_ connection: PostgresConnection, technologyID: UUID, version: Int, event: String, actor: UUID,
                       changes: String, bind: (any PostgresEncodable)? = nil) async throws {
        let binds: [any PostgresEncodable] = bind.map { [technologyID, $0] } ?? [technologyID]
        let value = try await connection.query(changes, binds)[0].decode(JSONB.self, at: 0)
        try await connection.query(
            "INSERT INTO techbank.technology_history (technology_id, version, event, actor_id, changes) VALUES ($1, $2, $3, $4, $5)",
            [technologyID, Int32(version), event, actor, value])
        try await connection.query(
            "SELECT ledger.journal_append('technology_' || $2, $1, jsonb_build_object('version', $3::int, 'actor_id', $4::uuid, 'changes', $5::jsonb))",
            [technologyID, event, Int32(version), actor, value])
    }

    /// The IP rights of each of `ids`, in one query.
    static func rights(_ connection: PostgresConnection, of ids: [UUID]) async throws -> [UUID: [IPRight]] {
        let rows = try await connection.query(
            """
            SELECT technology_id, id, type, office, number, kind_code, status, filed_on, granted_on, expires_on
              FROM techbank.ip_rights WHERE technology_id = ANY($1) ORDER BY type, office, normalized_number
            """,
            [ids])
        var rights: [UUID: [IPRight]] = [:]
        for row in rows {
            rights[try row.decode(UUID.self, at: 0), default: []].append(IPRight(
                id: try row.decode(UUID.self, at: 1), type: try row.decode(String.self, at: 2), office: try row.decode(String.self, at: 3),
                number: try row.decode(String.self, at: 4), kindCode: try row.decode(String?.self, at: 5), status: try row.decode(String.self, at: 6),
                filedOn: try row.decode(PostgresDate?.self, at: 7), grantedOn: try row.decode(PostgresDate?.self, at: 8),
                expiresOn: try row.decode(PostgresDate?.self, at: 9)))
        }
        return rights
    }

    static func decode(_ row: PostgresRow, rights: [IPRight]) throws -> Technology {
        let statusText = try row.decode(String.self, "status")
        guard let status = TechnologyStatus(rawValue: statusText) else {
            throw PostgresError(code: .decoding, message: "unknown technology status \(statusText)")
        }
        return Technology(
            id: try row.decode(UUID.self, "id"), ownerID: try row.decode(UUID.self, "owner_id"), title: try row.decode(String.self, "title"),
            summary: try row.decode(String.self, "summary"), description: try row.decode(String.self, "description"),
            field: try row.decode(String.self, "field"), keywords: try row.decode([String].self, "keywords"), trl: try row.decode(Int.self, "trl"),
            trlVerified: try row.decode(Bool.self, "trl_verified"), inventors: try row.decode(JSONB.self, "inventors").decode([Inventor].self),
            askingTerms: try row.decode(JSONB?.self, "asking_terms"), status: status, version: try row.decode(Int.self, "version"),
            createdAt: try row.decode(Date.self, "created_at"), updatedAt: try row.decode(Date.self, "updated_at"), ipRights: rights)
    }

    /// The error for an IP right that another technology holds, naming that technology.
    func ipRightTaken(_ rights: [IPRight]) async throws -> IPRightTaken {
        for (index, right) in rights.enumerated() {
            let rows = try await pool.withConnection { connection in
                try await connection.query(
                    "SELECT technology_id FROM techbank.ip_rights WHERE type = $1 AND office = $2 AND normalized_number = $3",
                    [right.type, right.office, right.normalizedNumber])
            }
            if let holder = try rows.first?.decode(UUID.self, at: 0) {
                return IPRightTaken(index: index, holderID: holder)
            }
        }
        // Two rights in the same request normalize to the same number: name the repeat.
        var seen: Set<[String]> = []
        for (index, right) in rights.enumerated() where !seen.insert([right.type, right.office, right.normalizedNumber]).inserted {
            return IPRightTaken(index: index, holderID: nil)
        }
        return IPRightTaken(index: 0, holderID: nil)
    }
}

/// An IP right is already registered to a technology (`holderID`; nil if the duplicate is within
/// the same request).
public struct IPRightTaken: Error, Sendable, Equatable {
    public let index: Int
    public let holderID: UUID?
}
