-- techbank schema version: 1
--
-- Applied by Schema.migrate after the ledger's schema (Sources/Ledger/ledger.sql), in the same
-- transaction, on every server start: every statement must be idempotent.  SQLSTATEs raised here:
--   TB010  an organization's sub_park_id names something that is not a sub-park
--   TB011  a match decision is final (or a match's parties changed)
--   TB020  an account that may go below zero is not the bank's settlement account

CREATE TABLE IF NOT EXISTS public.schema_version (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ---------------------------------------------------------------------------------------------
-- TechBank: organizations, credentials, idempotency keys
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS techbank;

CREATE TABLE IF NOT EXISTS techbank.organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    kind text NOT NULL CHECK (kind IN ('operator', 'institute', 'enterprise', 'broker', 'sub_park', 'committee')),
    sub_park_id uuid REFERENCES techbank.organizations (id),
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (sub_park_id IS NULL OR kind IN ('institute', 'enterprise'))
);
CREATE INDEX IF NOT EXISTS organizations_kind_idx ON techbank.organizations (kind, id);
CREATE INDEX IF NOT EXISTS organizations_sub_park_idx ON techbank.organizations (sub_park_id, id);
-- There is exactly one operator: the platform itself.
CREATE UNIQUE INDEX IF NOT EXISTS organizations_one_operator ON techbank.organizations (kind) WHERE kind = 'operator';

-- A sub-park reference must point at a sub-park.
CREATE OR REPLACE FUNCTION techbank.check_sub_park() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sub_park_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM techbank.organizations WHERE id = NEW.sub_park_id AND kind = 'sub_park') THEN
        RAISE EXCEPTION 'organization % is not a sub-park', NEW.sub_park_id USING ERRCODE = 'TB010';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER organizations_sub_park BEFORE INSERT OR UPDATE OF sub_park_id ON techbank.organizations
    FOR EACH ROW EXECUTE FUNCTION techbank.check_sub_park();

-- API keys: only the SHA-256 of the secret is stored. Keys carry 256 random bits, so a fast hash
-- is enough; a slow password hash would only add latency to every request.
CREATE TABLE IF NOT EXISTS techbank.api_keys (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES techbank.organizations (id),
    key_hash bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    label text CHECK (char_length(label) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_organization_idx ON techbank.api_keys (organization_id, created_at);

-- Idempotency-Key records: the first response to a (organization, key) is stored and replayed.
-- status IS NULL while the first request is still running.
CREATE TABLE IF NOT EXISTS techbank.idempotency_keys (
    organization_id uuid NOT NULL REFERENCES techbank.organizations (id),
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    status integer,
    headers jsonb,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON techbank.idempotency_keys (created_at);

-- The money model's last line (MoneyModel.swift): every account keeps its debits within its
-- credits, except the bank's settlement accounts, which stand for money outside the bank.
CREATE OR REPLACE FUNCTION techbank.only_settlement_goes_negative() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.code = 'settlement' AND NOT NEW.credits_must_not_exceed_debits
       AND NEW.owner_id = (SELECT id FROM techbank.organizations WHERE kind = 'operator') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'account %: only the bank''s settlement accounts may go below zero', NEW.id USING ERRCODE = 'TB020';
END $$;
CREATE OR REPLACE TRIGGER accounts_never_negative BEFORE INSERT ON ledger.accounts
    FOR EACH ROW WHEN (NOT NEW.debits_must_not_exceed_credits) EXECUTE FUNCTION techbank.only_settlement_goes_negative();

-- ---------------------------------------------------------------------------------------------
-- TechBank: the technology registry
-- ---------------------------------------------------------------------------------------------
-- The field taxonomy, served at GET /v1/fields.
CREATE TABLE IF NOT EXISTS techbank.fields (
    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name_en text NOT NULL,
    name_zh text NOT NULL
);
INSERT INTO techbank.fields (code, name_en, name_zh) VALUES
    ('biomedicine', 'Biomedicine', '生物医药'),
    ('integrated_circuits', 'Integrated circuits', '集成电路'),
    ('artificial_intelligence', 'Artificial intelligence', '人工智能'),
    ('new_energy_vehicles', 'New energy vehicles', '新能源汽车'),
    ('advanced_materials', 'Advanced materials', '新材料'),
    ('high_end_equipment', 'High-end equipment', '高端装备'),
    ('information_technology', 'Information technology', '信息技术'),
    ('environmental_technology', 'Environmental technology', '节能环保'),
    ('medical_devices', 'Medical devices', '医疗器械'),
    ('aerospace', 'Aerospace', '航空航天'),
    ('new_energy', 'New energy', '新能源'),
    ('agriculture', 'Modern agriculture', '现代农业')
ON CONFLICT (code) DO NOTHING;

CREATE TABLE IF NOT EXISTS techbank.technologies (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL REFERENCES techbank.organizations (id),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
    summary text NOT NULL CHECK (char_length(summary) BETWEEN 1 AND 5000),
    description text NOT NULL CHECK (char_length(description) <= 100000),
    field text NOT NULL REFERENCES techbank.fields (code),
    keywords text[] NOT NULL CHECK (cardinality(keywords) <= 30),
    trl smallint NOT NULL CHECK (trl BETWEEN 1 AND 9),
    trl_verified boolean NOT NULL DEFAULT false,
    inventors jsonb NOT NULL CHECK (jsonb_typeof(inventors) = 'array'),
    asking_terms jsonb,
    status text NOT NULL DEFAULT 'registered'
        CHECK (status IN ('registered', 'in_custody', 'listed', 'licensed', 'assigned', 'withdrawn')),
    -- What search matches: title, summary and keywords (never the confidential description).
    search_text text NOT NULL,
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS technologies_owner_idx ON techbank.technologies (owner_id, id);
CREATE INDEX IF NOT EXISTS technologies_status_field_idx ON techbank.technologies (status, field, id);
CREATE INDEX IF NOT EXISTS technologies_search_idx ON techbank.technologies USING gin (search_text gin_trgm_ops);

-- Inventor shares are whole basis points that sum to exactly 10000.
CREATE OR REPLACE FUNCTION techbank.inventor_shares_valid(p_inventors jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_array_length(p_inventors) BETWEEN 1 AND 100
       AND coalesce((SELECT bool_and(jsonb_typeof(i->'share_bp') = 'number' AND (i->>'share_bp')::numeric BETWEEN 1 AND 10000
                                     AND jsonb_typeof(i->'name') = 'string')
                       FROM jsonb_array_elements(p_inventors) i), false)
       AND (SELECT sum((i->>'share_bp')::numeric) FROM jsonb_array_elements(p_inventors) i) = 10000
$$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'technologies_inventor_shares') THEN
        ALTER TABLE techbank.technologies ADD CONSTRAINT technologies_inventor_shares CHECK (techbank.inventor_shares_valid(inventors));
    END IF;
END $$;

-- IP rights. One right (type, office, normalized number) belongs to at most one technology.
CREATE TABLE IF NOT EXISTS techbank.ip_rights (
    id uuid PRIMARY KEY,
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    type text NOT NULL CHECK (type IN ('patent', 'utility_model', 'design', 'software_copyright', 'ic_layout', 'plant_variety', 'technical_secret')),
    office text NOT NULL CHECK (office ~ '^[A-Z]{2}$'),
    number text NOT NULL CHECK (char_length(number) BETWEEN 1 AND 64),
    normalized_number text NOT NULL CHECK (normalized_number ~ '^[A-Z0-9.]{1,64}$'),
    kind_code text CHECK (kind_code ~ '^[A-Z][0-9]?$'),
    status text NOT NULL CHECK (status IN ('pending', 'granted', 'lapsed', 'expired', 'revoked')),
    filed_on date,
    granted_on date,
    expires_on date,
    CONSTRAINT ip_rights_one_holder UNIQUE (type, office, normalized_number),
    CHECK (granted_on IS NULL OR filed_on IS NULL OR granted_on >= filed_on),
    CHECK (expires_on IS NULL OR filed_on IS NULL OR expires_on >= filed_on)
);
CREATE INDEX IF NOT EXISTS ip_rights_technology_idx ON techbank.ip_rights (technology_id);

-- Every version of every technology, as registered or changed: append-only.
CREATE TABLE IF NOT EXISTS techbank.technology_history (
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    version integer NOT NULL,
    event text NOT NULL,
    actor_id uuid NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changes jsonb NOT NULL,
    PRIMARY KEY (technology_id, version)
);
CREATE OR REPLACE TRIGGER technology_history_append_only
    BEFORE UPDATE OR DELETE ON techbank.technology_history
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- Verifications: an accredited lab's test of a claim about a technology; append-only.
CREATE TABLE IF NOT EXISTS techbank.verifications (
    id uuid PRIMARY KEY,
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    verifier_id uuid NOT NULL REFERENCES techbank.organizations (id),
    claim text NOT NULL CHECK (char_length(claim) BETWEEN 1 AND 2000),
    method text NOT NULL CHECK (char_length(method) BETWEEN 1 AND 2000),
    result text NOT NULL CHECK (result IN ('confirmed', 'not_confirmed')),
    trl_evidenced smallint NOT NULL CHECK (trl_evidenced BETWEEN 1 AND 9),
    report_sha256 text CHECK (report_sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS verifications_technology_idx ON techbank.verifications (technology_id, created_at);
CREATE OR REPLACE TRIGGER verifications_append_only
    BEFORE UPDATE OR DELETE ON techbank.verifications
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- ---------------------------------------------------------------------------------------------
-- TechBank: demands and broker matches
-- ---------------------------------------------------------------------------------------------
-- A demand: what an enterprise is looking for. open → matched → closed | expired.
CREATE TABLE IF NOT EXISTS techbank.demands (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL REFERENCES techbank.organizations (id),
    -- The enterprise itself, or the broker or operator that posted on its behalf.
    posted_by uuid NOT NULL REFERENCES techbank.organizations (id),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
    description text NOT NULL CHECK (char_length(description) <= 20000),
    field text NOT NULL REFERENCES techbank.fields (code),
    keywords text[] NOT NULL CHECK (cardinality(keywords) <= 30),
    trl_min smallint NOT NULL CHECK (trl_min BETWEEN 1 AND 9),
    budget_min bigint CHECK (budget_min >= 0),
    budget_max bigint CHECK (budget_max >= 0),
    budget_currency text CHECK (budget_currency ~ '^[A-Z]{3}$'),
    region text NOT NULL CHECK (region ~ '^[A-Z]{2}(-[A-Z0-9]{1,3})?$'),
    deadline date NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'matched', 'closed', 'expired')),
    search_text text NOT NULL,
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((budget_min IS NULL AND budget_max IS NULL AND budget_currency IS NULL)
        OR (budget_min IS NOT NULL AND budget_max IS NOT NULL AND budget_currency IS NOT NULL AND budget_min <= budget_max))
);
CREATE INDEX IF NOT EXISTS demands_owner_idx ON techbank.demands (owner_id, created_at);
CREATE INDEX IF NOT EXISTS demands_status_deadline_idx ON techbank.demands (status, deadline);
CREATE INDEX IF NOT EXISTS demands_search_idx ON techbank.demands USING gin (search_text gin_trgm_ops);

-- A broker's introduction of a technology to a demand. Each side decides once; the match is
-- accepted when both accept and declined when either declines.
CREATE TABLE IF NOT EXISTS techbank.matches (
    id uuid PRIMARY KEY,
    broker_id uuid NOT NULL REFERENCES techbank.organizations (id),
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    demand_id uuid NOT NULL REFERENCES techbank.demands (id),
    -- The two parties, copied from the technology and the demand when the match is made.
    seller_id uuid NOT NULL REFERENCES techbank.organizations (id),
    buyer_id uuid NOT NULL REFERENCES techbank.organizations (id),
    note text NOT NULL CHECK (char_length(note) <= 2000),
    seller_decision text CHECK (seller_decision IN ('accepted', 'declined')),
    buyer_decision text CHECK (buyer_decision IN ('accepted', 'declined')),
    status text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'accepted', 'declined')),
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (status = CASE WHEN 'declined' IN (seller_decision, buyer_decision) THEN 'declined'
                         WHEN seller_decision = 'accepted' AND buyer_decision = 'accepted' THEN 'accepted'
                         ELSE 'proposed' END)
);
-- One live match per technology and demand: a declined one may be proposed again.
CREATE UNIQUE INDEX IF NOT EXISTS matches_one_live ON techbank.matches (technology_id, demand_id) WHERE status <> 'declined';
CREATE INDEX IF NOT EXISTS matches_broker_idx ON techbank.matches (broker_id, created_at);
CREATE INDEX IF NOT EXISTS matches_seller_idx ON techbank.matches (seller_id, created_at);
CREATE INDEX IF NOT EXISTS matches_buyer_idx ON techbank.matches (buyer_id, created_at);
CREATE INDEX IF NOT EXISTS matches_demand_idx ON techbank.matches (demand_id);

-- A decision, once taken, is final.
CREATE OR REPLACE FUNCTION techbank.matches_decide_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.seller_decision IS NOT NULL AND NEW.seller_decision IS DISTINCT FROM OLD.seller_decision)
       OR (OLD.buyer_decision IS NOT NULL AND NEW.buyer_decision IS DISTINCT FROM OLD.buyer_decision)
       OR NEW.technology_id <> OLD.technology_id OR NEW.demand_id <> OLD.demand_id OR NEW.broker_id <> OLD.broker_id
       OR NEW.seller_id <> OLD.seller_id OR NEW.buyer_id <> OLD.buyer_id THEN
        RAISE EXCEPTION 'a match decision is final' USING ERRCODE = 'TB011';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER matches_decide_once BEFORE UPDATE ON techbank.matches
    FOR EACH ROW EXECUTE FUNCTION techbank.matches_decide_once();
CREATE OR REPLACE TRIGGER matches_no_delete BEFORE DELETE ON techbank.matches
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- ---------------------------------------------------------------------------------------------
-- TechBank: deals, escrow, royalties
-- ---------------------------------------------------------------------------------------------
-- A deal between a seller institute and a buyer. Terms change only in draft/proposed, each
-- change a new version (deal_versions). Money moves only through the ledger.
CREATE TABLE IF NOT EXISTS techbank.deals (
    id uuid PRIMARY KEY,
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    seller_id uuid NOT NULL REFERENCES techbank.organizations (id),
    buyer_id uuid NOT NULL REFERENCES techbank.organizations (id),
    broker_id uuid REFERENCES techbank.organizations (id),
    match_id uuid REFERENCES techbank.matches (id),
    created_by uuid NOT NULL REFERENCES techbank.organizations (id),
    status text NOT NULL DEFAULT 'draft' CHECK (status IN (
        'draft', 'proposed', 'approval_required', 'approved', 'signed', 'active', 'completed', 'cancelled', 'disputed', 'terminated')),
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- The current terms; every version is in deal_versions.
    terms jsonb NOT NULL CHECK (jsonb_typeof(terms) = 'object'),
    kind text NOT NULL CHECK (kind IN ('assignment', 'exclusive_licence', 'sole_licence', 'non_exclusive_licence')),
    currency text NOT NULL REFERENCES ledger.currencies (code),
    -- Upfront plus every milestone: the certified technology income.
    total_amount bigint NOT NULL CHECK (total_amount >= 0),
    -- Why the committee must approve (NULL: no approval needed), decided when proposed.
    approval_rule text CHECK (approval_rule IN ('amount_above_threshold', 'assignment', 'cross_border')),
    seller_signed_at timestamptz,
    buyer_signed_at timestamptz,
    signed_at timestamptz,
    funded_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (seller_id <> buyer_id),
    CHECK ((signed_at IS NULL) = (status IN ('draft', 'proposed', 'approval_required', 'approved', 'cancelled'))),
    CHECK (funded_at IS NULL OR signed_at IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS deals_technology_idx ON techbank.deals (technology_id);
CREATE INDEX IF NOT EXISTS deals_seller_idx ON techbank.deals (seller_id, created_at);
CREATE INDEX IF NOT EXISTS deals_buyer_idx ON techbank.deals (buyer_id, created_at);
CREATE INDEX IF NOT EXISTS deals_broker_idx ON techbank.deals (broker_id, created_at);
-- Committee reports (Reports.swift): deals created, signed and funded in a period, and the
-- ledger transfers that paid a deal's sellers' side (metadata deal_id).
CREATE INDEX IF NOT EXISTS deals_created_idx ON techbank.deals (created_at);
CREATE INDEX IF NOT EXISTS deals_signed_idx ON techbank.deals (signed_at) WHERE signed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deals_funded_idx ON techbank.deals (funded_at) WHERE funded_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS transfers_deal_income_idx ON ledger.transfers (created_at)
    WHERE code IN ('seller_income', 'broker_fee', 'sub_park_fee');

-- Every version of every deal's terms: append-only.
CREATE TABLE IF NOT EXISTS techbank.deal_versions (
    deal_id uuid NOT NULL REFERENCES techbank.deals (id),
    version integer NOT NULL,
    terms jsonb NOT NULL,
    actor_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deal_id, version)
);
CREATE OR REPLACE TRIGGER deal_versions_append_only
    BEFORE UPDATE OR DELETE ON techbank.deal_versions
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- Milestones of the current terms, numbered from 1; rebuilt while terms may change, then each
-- moves scheduled → funded → (disputed →) released | refunded.
CREATE TABLE IF NOT EXISTS techbank.deal_milestones (
    deal_id uuid NOT NULL REFERENCES techbank.deals (id),
    number integer NOT NULL CHECK (number BETWEEN 1 AND 50),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    amount bigint NOT NULL CHECK (amount > 0),
    due_on date NOT NULL,
    evidence_required boolean NOT NULL,
    status text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'funded', 'disputed', 'released', 'refunded')),
    -- What the seller delivered, given by the buyer on release (required if evidence_required).
    evidence text CHECK (char_length(evidence) <= 2000),
    dispute_reason text CHECK (char_length(dispute_reason) <= 2000),
    resolution_reason text CHECK (char_length(resolution_reason) <= 2000),
    PRIMARY KEY (deal_id, number)
);
ALTER TABLE techbank.deal_milestones ADD COLUMN IF NOT EXISTS dispute_reason text CHECK (char_length(dispute_reason) <= 2000);

-- Committee decisions: append-only.
CREATE TABLE IF NOT EXISTS techbank.deal_approvals (
    id uuid PRIMARY KEY,
    deal_id uuid NOT NULL REFERENCES techbank.deals (id),
    deal_version integer NOT NULL,
    committee_id uuid NOT NULL REFERENCES techbank.organizations (id),
    decision text NOT NULL CHECK (decision IN ('approve', 'reject')),
    rule text NOT NULL,
    reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deal_approvals_deal_idx ON techbank.deal_approvals (deal_id, created_at);
CREATE OR REPLACE TRIGGER deal_approvals_append_only
    BEFORE UPDATE OR DELETE ON techbank.deal_approvals
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- The rights a signed deal grants, one row per territory: the database itself keeps exclusive
-- rights exclusive. A territory is a range over country codes (AA = 0 … ZZ = 675); WORLD is all
-- of them. An assignment covers the world from its start, forever. Conflicts:
--   exclusive/sole/assignment vs exclusive/sole/assignment  (grants_strong_exclusive)
--   exclusive/assignment vs non-exclusive                   (grants_exclusive_vs_non_exclusive)
-- while sole vs non-exclusive and non-exclusive vs non-exclusive may overlap.
CREATE TABLE IF NOT EXISTS techbank.licence_grants (
    deal_id uuid NOT NULL REFERENCES techbank.deals (id),
    technology_id uuid NOT NULL REFERENCES techbank.technologies (id),
    kind text NOT NULL CHECK (kind IN ('assignment', 'exclusive_licence', 'sole_licence', 'non_exclusive_licence')),
    territory text NOT NULL CHECK (territory ~ '^([A-Z]{2}|WORLD)$'),
    territory_range int4range NOT NULL,
    period daterange NOT NULL CHECK (NOT isempty(period)),
    non_exclusive boolean GENERATED ALWAYS AS (kind = 'non_exclusive_licence') STORED,
    PRIMARY KEY (deal_id, territory)
);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'grants_strong_exclusive') THEN
        ALTER TABLE techbank.licence_grants ADD CONSTRAINT grants_strong_exclusive
            EXCLUDE USING gist (technology_id WITH =, territory_range WITH &&, period WITH &&) WHERE (kind <> 'non_exclusive_licence');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'grants_exclusive_vs_non_exclusive') THEN
        ALTER TABLE techbank.licence_grants ADD CONSTRAINT grants_exclusive_vs_non_exclusive
            EXCLUDE USING gist (technology_id WITH =, territory_range WITH &&, period WITH &&, non_exclusive WITH <>) WHERE (kind <> 'sole_licence');
    END IF;
END $$;

-- Royalty reports: one per period; periods of one deal never overlap.
CREATE TABLE IF NOT EXISTS techbank.royalty_reports (
    id uuid PRIMARY KEY,
    deal_id uuid NOT NULL REFERENCES techbank.deals (id),
    period daterange NOT NULL CHECK (NOT isempty(period)),
    net_sales bigint NOT NULL CHECK (net_sales >= 0),
    currency text NOT NULL REFERENCES ledger.currencies (code),
    royalty bigint NOT NULL CHECK (royalty >= 0),
    minimum_top_up bigint NOT NULL CHECK (minimum_top_up >= 0),
    created_by uuid NOT NULL REFERENCES techbank.organizations (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT royalty_reports_no_overlap EXCLUDE USING gist (deal_id WITH =, period WITH &&)
);
CREATE OR REPLACE TRIGGER royalty_reports_append_only
    BEFORE UPDATE OR DELETE ON techbank.royalty_reports
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- Technology-contract registration records, produced on signing: append-only.
CREATE TABLE IF NOT EXISTS techbank.registrations (
    deal_id uuid PRIMARY KEY REFERENCES techbank.deals (id),
    number text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4}SH[0-9]{10}$'),
    year integer NOT NULL,
    contract_category text NOT NULL,
    parties jsonb NOT NULL,
    certified_income bigint NOT NULL,
    currency text NOT NULL,
    signed_on date NOT NULL,
    -- Patent licences must be filed with the patent office within three months of the term's start.
    filing_due_on date,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS registrations_filing_idx ON techbank.registrations (filing_due_on) WHERE filing_due_on IS NOT NULL;
CREATE OR REPLACE TRIGGER registrations_append_only
    BEFORE UPDATE OR DELETE ON techbank.registrations
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
-- Registration numbers count up from 1 in each year.
CREATE TABLE IF NOT EXISTS techbank.registration_counters (
    year integer PRIMARY KEY,
    last integer NOT NULL
);

-- External payment references of deposits and withdrawals: each is used once.
CREATE TABLE IF NOT EXISTS techbank.payments (
    external_ref text PRIMARY KEY CHECK (char_length(external_ref) BETWEEN 1 AND 100),
    direction text NOT NULL CHECK (direction IN ('deposit', 'withdrawal')),
    organization_id uuid NOT NULL REFERENCES techbank.organizations (id),
    transfer_id uuid NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER payments_append_only
    BEFORE UPDATE OR DELETE ON techbank.payments
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();

-- ---------------------------------------------------------------------------------------------
-- Least privilege: the server works as techbank_app (Schema.applicationRole), which uses the
-- ledger as ledger_user and owns no object: it reads and writes TechBank's tables (their triggers
-- keep the append-only ones append-only), and cannot UPDATE or DELETE a ledger row.
-- ---------------------------------------------------------------------------------------------
DO $$ BEGIN
    CREATE ROLE techbank_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- it exists (roles are shared by every database of the cluster)
END $$;
GRANT ledger_user TO techbank_app;
GRANT USAGE ON SCHEMA techbank TO techbank_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA techbank TO techbank_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA techbank TO techbank_app;
GRANT SELECT ON public.schema_version TO techbank_app;

INSERT INTO public.schema_version (singleton, version) VALUES (true, 1)
ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
