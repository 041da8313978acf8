-- The whole TechBank database schema, readable in one file: the ledger's part, then TechBank's.
--
-- The binary does not run this file: it applies numbered steps (Sources/Ledger/Migrations, then
-- Sources/TechBank/Migrations; see the README's "Schema migrations"). This file is what those
-- steps build, kept by hand; a test builds a database from each and fails if they differ.

-- ledger schema (the double-entry engine; knows nothing of technologies or HTTP)
--
-- SQLSTATEs raised here:
--   TB001  ledger history is append-only (transfers, pending_resolutions, journal)
--   TB002  account row change not allowed (delete/truncate, immutable column, opening balance)
--   TB003  invalid transfer batch (not a non-empty array of <= 8000 well-formed objects)
--   TB900  private to create_transfers (atomic rollback); never escapes it

CREATE SCHEMA IF NOT EXISTS ledger;

-- Which of the ledger's numbered steps (Sources/Ledger/Migrations) the database has.
CREATE TABLE IF NOT EXISTS ledger.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- tables

CREATE TABLE IF NOT EXISTS ledger.currencies (
    code     text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4)
);

-- ISO 4217 active codes with their minor units (codes without minor units,
-- such as XAU or XDR, are left out).
INSERT INTO ledger.currencies (code, exponent) VALUES
('AED',2),('AFN',2),('ALL',2),('AMD',2),('ANG',2),('AOA',2),('ARS',2),('AUD',2),('AWG',2),('AZN',2),('BAM',2),('BBD',2),
('BDT',2),('BGN',2),('BHD',3),('BIF',0),('BMD',2),('BND',2),('BOB',2),('BOV',2),('BRL',2),('BSD',2),('BTN',2),('BWP',2),
('BYN',2),('BZD',2),('CAD',2),('CDF',2),('CHE',2),('CHF',2),('CHW',2),('CLF',4),('CLP',0),('CNY',2),('COP',2),('COU',2),
('CRC',2),('CUP',2),('CVE',2),('CZK',2),('DJF',0),('DKK',2),('DOP',2),('DZD',2),('EGP',2),('ERN',2),('ETB',2),('EUR',2),
('FJD',2),('FKP',2),('GBP',2),('GEL',2),('GHS',2),('GIP',2),('GMD',2),('GNF',0),('GTQ',2),('GYD',2),('HKD',2),('HNL',2),
('HTG',2),('HUF',2),('IDR',2),('ILS',2),('INR',2),('IQD',3),('IRR',2),('ISK',0),('JMD',2),('JOD',3),('JPY',0),('KES',2),
('KGS',2),('KHR',2),('KMF',0),('KPW',2),('KRW',0),('KWD',3),('KYD',2),('KZT',2),('LAK',2),('LBP',2),('LKR',2),('LRD',2),
('LSL',2),('LYD',3),('MAD',2),('MDL',2),('MGA',2),('MKD',2),('MMK',2),('MNT',2),('MOP',2),('MRU',2),('MUR',2),('MVR',2),
('MWK',2),('MXN',2),('MXV',2),('MYR',2),('MZN',2),('NAD',2),('NGN',2),('NIO',2),('NOK',2),('NPR',2),('NZD',2),('OMR',3),
('PAB',2),('PEN',2),('PGK',2),('PHP',2),('PKR',2),('PLN',2),('PYG',0),('QAR',2),('RON',2),('RSD',2),('RUB',2),('RWF',0),
('SAR',2),('SBD',2),('SCR',2),('SDG',2),('SEK',2),('SGD',2),('SHP',2),('SLE',2),('SOS',2),('SRD',2),('SSP',2),('STN',2),
('SVC',2),('SYP',2),('SZL',2),('THB',2),('TJS',2),('TMT',2),('TND',3),('TOP',2),('TRY',2),('TTD',2),('TWD',2),('TZS',2),
('UAH',2),('UGX',0),('USD',2),('USN',2),('UYI',0),('UYU',2),('UYW',4),('UZS',2),('VED',2),('VES',2),('VND',0),('VUV',0),
('WST',2),('XAF',0),('XCD',2),('XCG',2),('XOF',0),('XPF',0),('YER',2),('ZAR',2),('ZMW',2),('ZWG',2)
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS ledger.accounts (
    id                             uuid PRIMARY KEY,
    currency                       text NOT NULL REFERENCES ledger.currencies,
    owner_id                       uuid NOT NULL,
    code                           text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    debits_must_not_exceed_credits boolean NOT NULL DEFAULT false,
    credits_must_not_exceed_debits boolean NOT NULL DEFAULT false,
    metadata                       jsonb,
    closed                         boolean NOT NULL DEFAULT false,
    created_at                     timestamptz NOT NULL DEFAULT now(),
    debits_posted                  bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted                 bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending                 bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending                bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    CONSTRAINT accounts_one_balance_rule
        CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    CONSTRAINT accounts_debits_within_credits
        CHECK (NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted),
    CONSTRAINT accounts_credits_within_debits
        CHECK (NOT credits_must_not_exceed_debits OR credits_posted + credits_pending <= debits_posted)
);
CREATE INDEX IF NOT EXISTS accounts_owner_id_idx ON ledger.accounts (owner_id);

CREATE TABLE IF NOT EXISTS ledger.transfers (
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('posted', 'pending', 'post_pending', 'void_pending')),
    debit_account_id  uuid NOT NULL REFERENCES ledger.accounts,
    credit_account_id uuid NOT NULL REFERENCES ledger.accounts,
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL REFERENCES ledger.currencies,
    -- Same format as accounts.code, spelled so PostgreSQL's regex engine does not expand {0,62}
    -- (ten times cheaper; this runs on every transfer).
    code              text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]*$' AND char_length(code) <= 63),
    pending_id        uuid REFERENCES ledger.transfers (id),
    timeout_seconds   integer CHECK (timeout_seconds > 0),
    expires_at        timestamptz,
    metadata          jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transfers_accounts_differ CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT transfers_pending_id_iff_resolution
        CHECK ((pending_id IS NOT NULL) = (kind IN ('post_pending', 'void_pending'))),
    CONSTRAINT transfers_timeout_only_pending CHECK (timeout_seconds IS NULL OR kind = 'pending'),
    CONSTRAINT transfers_expires_iff_timeout CHECK ((expires_at IS NULL) = (timeout_seconds IS NULL))
);
CREATE INDEX IF NOT EXISTS transfers_debit_seq_idx ON ledger.transfers (debit_account_id, seq);
CREATE INDEX IF NOT EXISTS transfers_credit_seq_idx ON ledger.transfers (credit_account_id, seq);
CREATE INDEX IF NOT EXISTS transfers_created_at_idx ON ledger.transfers (created_at);

CREATE TABLE IF NOT EXISTS ledger.pending_resolutions (
    pending_id  uuid PRIMARY KEY REFERENCES ledger.transfers (id),
    resolution  text NOT NULL CHECK (resolution IN ('posted', 'voided', 'expired')),
    transfer_id uuid REFERENCES ledger.transfers (id),
    resolved_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pending_resolutions_transfer_iff_not_expired
        CHECK ((transfer_id IS NULL) = (resolution = 'expired'))
);

CREATE TABLE IF NOT EXISTS ledger.open_holds (
    pending_id uuid PRIMARY KEY REFERENCES ledger.transfers (id),
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS open_holds_expires_at_idx ON ledger.open_holds (expires_at);

CREATE TABLE IF NOT EXISTS ledger.journal (
    shard      smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
    seq        bigint NOT NULL CHECK (seq >= 1),
    event_type text NOT NULL,
    subject_id uuid,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    PRIMARY KEY (shard, seq)
);

CREATE TABLE IF NOT EXISTS ledger.journal_heads (
    shard smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    seq   bigint NOT NULL,
    hash  bytea NOT NULL
);
INSERT INTO ledger.journal_heads (shard, seq, hash)
SELECT s, 0, decode(repeat('00', 32), 'hex') FROM generate_series(0, 15) AS s
ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------- guards

CREATE OR REPLACE FUNCTION ledger.reject_history_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger history is append-only: % on %.% is not allowed',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'TB001';
END $$;

CREATE OR REPLACE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON ledger.transfers
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON ledger.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER pending_resolutions_append_only BEFORE UPDATE OR DELETE ON ledger.pending_resolutions
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER pending_resolutions_no_truncate BEFORE TRUNCATE ON ledger.pending_resolutions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON ledger.journal
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER journal_no_truncate BEFORE TRUNCATE ON ledger.journal
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_history_change();

CREATE OR REPLACE FUNCTION ledger.reject_account_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'account %: only balances and closed may change', OLD.id USING ERRCODE = 'TB002';
    END IF;
    RAISE EXCEPTION 'accounts cannot be removed (%)', TG_OP USING ERRCODE = 'TB002';
END $$;

-- The WHEN clause keeps the hot balance UPDATE free of a PL/pgSQL call per row.
CREATE OR REPLACE TRIGGER accounts_immutable_columns BEFORE UPDATE ON ledger.accounts
    FOR EACH ROW WHEN ((OLD.id, OLD.currency, OLD.owner_id, OLD.code, OLD.debits_must_not_exceed_credits,
                        OLD.credits_must_not_exceed_debits, OLD.metadata, OLD.created_at)
                       IS DISTINCT FROM
                       (NEW.id, NEW.currency, NEW.owner_id, NEW.code, NEW.debits_must_not_exceed_credits,
                        NEW.credits_must_not_exceed_debits, NEW.metadata, NEW.created_at))
    EXECUTE FUNCTION ledger.reject_account_change();
CREATE OR REPLACE TRIGGER accounts_no_delete BEFORE DELETE ON ledger.accounts
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_account_change();
CREATE OR REPLACE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON ledger.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_account_change();

-- ---------------------------------------------------------------- journal

-- Timestamps inside hashed data: explicit UTC, microseconds, independent of TimeZone/DateStyle.
CREATE OR REPLACE FUNCTION ledger.utc_text(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- Who made each change, with which API key, for which request: set per request by the server
-- (session settings techbank.actor_id, techbank.key_id, techbank.request_id); NULL for work
-- nobody requested (expiry, sequencing).
ALTER TABLE ledger.journal ADD COLUMN IF NOT EXISTS actor_id uuid;
ALTER TABLE ledger.journal ADD COLUMN IF NOT EXISTS key_id uuid;
ALTER TABLE ledger.journal ADD COLUMN IF NOT EXISTS request_id text;

-- The single definition of the bytes that are hashed for a journal entry. Entries without an
-- actor hash exactly as before actors were recorded.
CREATE OR REPLACE FUNCTION ledger.journal_canonical(p_shard smallint, p_seq bigint, p_event_type text,
    p_subject_id uuid, p_created_at timestamptz, p_payload jsonb, p_actor_id uuid, p_key_id uuid, p_request_id text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN convert_to((jsonb_build_object('shard', p_shard, 'seq', p_seq, 'type', p_event_type,
        'subject', p_subject_id, 'at', ledger.utc_text(p_created_at), 'payload', p_payload)
        || CASE WHEN p_actor_id IS NULL AND p_key_id IS NULL AND p_request_id IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('actor', p_actor_id, 'key', p_key_id, 'request', p_request_id) END)::text, 'UTF8');
END $$;

-- The session's setting `name`, or NULL when unset or empty.
CREATE OR REPLACE FUNCTION ledger.session_setting(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting(p_name, true), '') $$;

-- Appends entries (in array order) to this backend's shard under one head lock. Entry k names
-- p_actors[k], p_keys[k] and p_requests[k]; without the arrays, every entry names the session's
-- settings.
CREATE OR REPLACE FUNCTION ledger.journal_append_many(p_types text[], p_subjects uuid[], p_payloads jsonb[],
    p_actors uuid[] DEFAULT NULL, p_keys uuid[] DEFAULT NULL, p_requests text[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_shard smallint;
    v_n     integer := coalesce(cardinality(p_types), 0);
    v_now   timestamptz := now();
    v_seq   bigint;
    v_hash  bytea;
    v_prev  bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_actors   uuid[] := p_actors;
    v_keys     uuid[] := p_keys;
    v_requests text[] := p_requests;
BEGIN
    IF v_n = 0 THEN RETURN; END IF;
    IF v_actors IS NULL AND v_keys IS NULL AND v_requests IS NULL THEN
        v_actors := array_fill(ledger.session_setting('techbank.actor_id')::uuid, ARRAY[v_n]);
        v_keys := array_fill(ledger.session_setting('techbank.key_id')::uuid, ARRAY[v_n]);
        v_requests := array_fill(left(ledger.session_setting('techbank.request_id'), 200), ARRAY[v_n]);
    END IF;
    -- Take the first shard no other transaction holds, starting from this backend's own, so that
    -- concurrent writers do not queue behind one head; only when all 16 are busy, wait for ours.
    SELECT h.shard, h.seq, h.hash INTO v_shard, v_seq, v_hash FROM ledger.journal_heads h
     ORDER BY (h.shard - pg_backend_pid() % 16 + 16) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        v_shard := pg_backend_pid() % 16;
        SELECT h.seq, h.hash INTO v_seq, v_hash FROM ledger.journal_heads h WHERE h.shard = v_shard FOR UPDATE;
    END IF;
    FOR k IN 1 .. v_n LOOP
        v_prev[k] := v_hash;
        v_hash := sha256(v_hash || ledger.journal_canonical(v_shard, v_seq + k, p_types[k], p_subjects[k],
                                                             v_now, p_payloads[k], v_actors[k], v_keys[k], v_requests[k]));
        v_hashes[k] := v_hash;
    END LOOP;
    INSERT INTO ledger.journal (shard, seq, event_type, subject_id, payload, created_at, prev_hash, hash, actor_id, key_id, request_id)
    SELECT v_shard, v_seq + u.k, u.t, u.s, u.p, v_now, u.ph, u.h, v_actors[u.k], v_keys[u.k], v_requests[u.k]
    FROM unnest(p_types, p_subjects, p_payloads, v_prev, v_hashes) WITH ORDINALITY AS u(t, s, p, ph, h, k);
    UPDATE ledger.journal_heads SET seq = v_seq + v_n, hash = v_hash WHERE shard = v_shard;
END $$;

CREATE OR REPLACE FUNCTION ledger.journal_append(p_event_type text, p_subject_id uuid, p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
    SELECT ledger.journal_append_many(ARRAY[p_event_type], ARRAY[p_subject_id], ARRAY[p_payload]);
$$;

-- ---------------------------------------------------------------- transparency log
-- Journal entries, once committed, are numbered 0, 1, 2 … (their leaf index) by
-- ledger.sequence_journal, and summarized by the Merkle tree of RFC 9162 §2.1: the leaf hash of
-- an entry is SHA-256(0x00 ‖ its canonical bytes). merkle_nodes keeps every complete subtree
-- (level l, index i: the hash of leaves [i·2^l, (i+1)·2^l)), so roots and proofs of any tree size
-- read O(log² n) rows. Both tables are append-only.
CREATE TABLE IF NOT EXISTS ledger.journal_leaves (
    leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
    shard      smallint NOT NULL,
    seq        bigint NOT NULL,
    leaf_hash  bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
    UNIQUE (shard, seq)
);
-- No foreign key to ledger.journal: it would make TRUNCATE of the journal fail on the key before
-- its append-only trigger answers TB001; a leaf whose entry is gone is what `audit verify` reports.
ALTER TABLE ledger.journal_leaves DROP CONSTRAINT IF EXISTS journal_leaves_shard_seq_fkey;
CREATE TABLE IF NOT EXISTS ledger.merkle_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    index bigint NOT NULL CHECK (index >= 0),
    hash  bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, index)
);
CREATE OR REPLACE TRIGGER journal_leaves_append_only BEFORE UPDATE OR DELETE ON ledger.journal_leaves
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER journal_leaves_no_truncate BEFORE TRUNCATE ON ledger.journal_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON ledger.merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_history_change();
CREATE OR REPLACE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON ledger.merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_history_change();

-- Numbers the committed entries not yet in the tree (at most p_per_shard from each shard) and
-- returns the tree size. Within a shard, writers hold the head's lock until they commit, so the
-- committed entries of a shard are always a gap-free prefix; across shards, newly seen entries
-- are numbered in time order. One sequencer at a time (advisory lock).
CREATE OR REPLACE FUNCTION ledger.sequence_journal(p_per_shard integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_size  bigint;
    v_hash  bytea;
    v_left  bytea;
    v_level smallint;
    v_index bigint;
    r       record;
BEGIN
    PERFORM pg_advisory_xact_lock(7262011002);
    SELECT coalesce(max(leaf_index) + 1, 0) INTO v_size FROM ledger.journal_leaves;
    FOR r IN
        SELECT e.shard, e.seq, e.canonical FROM ledger.journal_heads h
        CROSS JOIN LATERAL (
            SELECT j.shard, j.seq, j.created_at,
                   ledger.journal_canonical(j.shard, j.seq, j.event_type, j.subject_id, j.created_at, j.payload,
                                            j.actor_id, j.key_id, j.request_id) AS canonical
              FROM ledger.journal j
             WHERE j.shard = h.shard
               AND j.seq > (SELECT coalesce(max(l.seq), 0) FROM ledger.journal_leaves l WHERE l.shard = h.shard)
             ORDER BY j.seq LIMIT p_per_shard) e
        ORDER BY e.created_at, e.shard, e.seq
    LOOP
        v_hash := sha256('\x00'::bytea || r.canonical);
        INSERT INTO ledger.journal_leaves (leaf_index, shard, seq, leaf_hash) VALUES (v_size, r.shard, r.seq, v_hash);
        INSERT INTO ledger.merkle_nodes (level, index, hash) VALUES (0, v_size, v_hash);
        v_level := 0;
        v_index := v_size;
        WHILE v_index % 2 = 1 LOOP
            SELECT n.hash INTO v_left FROM ledger.merkle_nodes n WHERE n.level = v_level AND n.index = v_index - 1;
            v_hash := sha256('\x01'::bytea || v_left || v_hash);
            v_level := v_level + 1;
            v_index := v_index / 2;
            INSERT INTO ledger.merkle_nodes (level, index, hash) VALUES (v_level, v_index, v_hash);
        END LOOP;
        v_size := v_size + 1;
    END LOOP;
    RETURN v_size;
END $$;

-- ---------------------------------------------------------------- accounts

CREATE OR REPLACE FUNCTION ledger.account_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Money only enters an account through transfers.
    IF (NEW.debits_posted, NEW.credits_posted, NEW.debits_pending, NEW.credits_pending) <> (0, 0, 0, 0) THEN
        RAISE EXCEPTION 'account % must be created with zero balances', NEW.id USING ERRCODE = 'TB002';
    END IF;
    PERFORM ledger.journal_append('account_created', NEW.id,
        to_jsonb(NEW) - ARRAY['debits_posted', 'credits_posted', 'debits_pending', 'credits_pending']
            || jsonb_build_object('created_at', ledger.utc_text(NEW.created_at)));
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER accounts_journal_created AFTER INSERT ON ledger.accounts
    FOR EACH ROW EXECUTE FUNCTION ledger.account_created();

-- true if the account exists (closing a closed account is a no-op that journals nothing).
CREATE OR REPLACE FUNCTION ledger.close_account(p_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger.accounts SET closed = true WHERE id = p_id AND NOT closed;
    IF FOUND THEN
        PERFORM ledger.journal_append('account_closed', p_id, jsonb_build_object('account_id', p_id));
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM ledger.accounts WHERE id = p_id);
END $$;

-- ---------------------------------------------------------------- transfers

CREATE OR REPLACE FUNCTION ledger.pending_expired_payload(p_pending_id uuid, p_amount bigint, p_currency text,
    p_debit uuid, p_credit uuid) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN jsonb_build_object('pending_id', p_pending_id, 'amount', p_amount, 'currency', p_currency,
                          'debit_account_id', p_debit, 'credit_account_id', p_credit);

-- The journal payload of a transfer: the stored row, timestamps in canonical UTC form.
CREATE OR REPLACE FUNCTION ledger.transfer_payload(t ledger.transfers) RETURNS jsonb
LANGUAGE sql STABLE
RETURN to_jsonb(t) || jsonb_build_object('created_at', ledger.utc_text(t.created_at),
                                         'expires_at', ledger.utc_text(t.expires_at));

-- NULL if no transfer with this id exists, '' if the request matches it, else the sorted,
-- comma-separated names of the differing fields.  Post/void requests carry no accounts or
-- currency; a post without amount means the full pending amount; a void's amount is ignored.
CREATE OR REPLACE FUNCTION ledger.transfer_differences(p_id uuid, p_kind text, p_debit uuid,
    p_credit uuid, p_amount bigint, p_currency text, p_code text, p_metadata jsonb, p_timeout integer,
    p_pending_id uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT concat_ws(',',
        CASE WHEN p_kind <> 'void_pending' AND s.amount IS DISTINCT FROM coalesce(p_amount,
            (SELECT t.amount FROM ledger.transfers t WHERE t.id = p_pending_id AND t.kind = 'pending'))
            THEN 'amount' END,
        CASE WHEN s.code IS DISTINCT FROM p_code THEN 'code' END,
        CASE WHEN p_kind IN ('posted', 'pending') AND s.credit_account_id IS DISTINCT FROM p_credit
            THEN 'credit_account_id' END,
        CASE WHEN p_kind IN ('posted', 'pending') AND s.currency IS DISTINCT FROM p_currency
            THEN 'currency' END,
        CASE WHEN p_kind IN ('posted', 'pending') AND s.debit_account_id IS DISTINCT FROM p_debit
            THEN 'debit_account_id' END,
        CASE WHEN s.kind IS DISTINCT FROM p_kind THEN 'kind' END,
        CASE WHEN s.metadata IS DISTINCT FROM p_metadata THEN 'metadata' END,
        CASE WHEN s.pending_id IS DISTINCT FROM p_pending_id THEN 'pending_id' END,
        CASE WHEN s.timeout_seconds IS DISTINCT FROM p_timeout THEN 'timeout_seconds' END)
    FROM ledger.transfers s WHERE s.id = p_id;
$$;

-- p_owner and p_reserved_codes (both NULL for the ledger's own operator) limit what one call may
-- do, checked here under the account locks, against stored state and this batch's successes:
--   p_owner         money leaves only accounts this owner holds, and only its holds are posted or
--                   voided; another owner's account answers account_not_found, another owner's
--                   hold pending_transfer_not_found, exactly as if they did not exist.
--   p_reserved_codes no transfer may carry one of these codes (code_reserved, detail code), credit
--                   an account whose code is one (detail credit_account_id), or post or void a
--                   hold carrying one (detail pending_id).
--
-- Per element, beside the transfer's own fields (group commit: one call carries transfers of
-- several callers, each with its own principal and journal attribution):
--   owner_id    the principal this transfer acts for, in a call without p_owner (TB003 otherwise).
--               The effective owner of an element is owner_id, else p_owner; an element with an
--               owner is bound by it and by p_reserved_codes as above; one without acts for the
--               ledger's operator.
--   alone       true: the transfer is an atomic batch of its own within the call: its refusal
--               changes nothing (an expired hold it resolves is left for expire_pending).
--   actor_id, key_id, request_id
--               whom its journal entries name. An element with none of the three keys is
--               journaled with the session's settings (techbank.actor_id, techbank.key_id,
--               techbank.request_id).
CREATE OR REPLACE FUNCTION ledger.create_transfers(p_transfers jsonb, p_atomic boolean,
    p_owner uuid DEFAULT NULL, p_reserved_codes text[] DEFAULT NULL)
RETURNS TABLE (idx integer, outcome text, detail text, id uuid, kind text, debit_account_id uuid,
    credit_account_id uuid, amount bigint, currency text, code text, pending_id uuid,
    timeout_seconds integer, expires_at timestamptz, metadata jsonb, created_at timestamptz)
LANGUAGE plpgsql
-- Estimates for unnest() are poor: JIT would cost more than the whole batch, and custom plans
-- would be re-planned on every call. Every statement here reads rows by key, but the generic plans
-- (made once per connection from the statistics of the moment) sometimes chose whole-table scans;
-- with sequential scans off they always use the keys.
SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    c_max constant bigint := 9223372036854775807;
    v_now timestamptz := now();
    v_n integer;
    v_bad integer;
    v_problem text;
    -- the request, one array slot per transfer (1-based)
    i_id uuid[]; i_kind text[]; i_debit uuid[]; i_credit uuid[]; i_currency text[]; i_amount bigint[];
    i_code text[]; i_meta jsonb[]; i_timeout integer[]; i_pending uuid[];
    -- per transfer: whom it acts for (NULL: the operator) and whom its journal entry names
    i_owner uuid[]; i_actor uuid[]; i_key uuid[]; i_request text[]; i_alone boolean[];
    -- referenced pending transfers that were stored before this call
    pd_debit uuid[] := '{}'; pd_credit uuid[] := '{}'; pd_amount bigint[] := '{}';
    pd_currency text[] := '{}'; pd_expires timestamptz[] := '{}'; pd_code text[] := '{}';
    -- the locked accounts; balances are tracked here and written back once at the end
    a_id uuid[]; a_owner uuid[]; a_code text[]; a_cur text[]; a_closed boolean[]; a_dnec boolean[]; a_cned boolean[];
    a_dp bigint[]; a_cp bigint[]; a_dq bigint[]; a_cq bigint[]; a_touched boolean[];
    -- per transfer: positions of its accounts in a_*; e_grp = first element with the same id,
    -- e_pgrp = first element whose id is this element's pending_id.  r_ok[group] = the element
    -- of that id group that succeeded (at most one can: later ones find it and get 'exists').
    e_di integer[]; e_ci integer[]; e_grp integer[]; e_pgrp integer[]; r_ok integer[];
    r_outcome text[]; r_detail text[]; r_expires timestamptz[];
    j_type text[] := '{}'; j_subject uuid[] := '{}'; j_payload jsonb[] := '{}'; v_jn integer := 0;
    j_actor uuid[] := '{}'; j_key uuid[] := '{}'; j_request text[] := '{}';
    v_fail integer;
    v_kind text; v_out text; v_det text; v_diff text; v_amt bigint; v_di integer; v_ci integer;
    v_t ledger.transfers;
    v_found boolean; v_pid uuid; v_pdebit uuid; v_pcredit uuid; v_pamt bigint; v_pcur text;
    v_pexp timestamptz; v_pcode text; v_res text; v_src integer; v_checked boolean; v_bound boolean;
BEGIN
    IF jsonb_typeof(p_transfers) IS DISTINCT FROM 'array'
       OR jsonb_array_length(p_transfers) NOT BETWEEN 1 AND 8000 THEN
        RAISE EXCEPTION 'transfers must be a JSON array of 1 to 8000 objects' USING ERRCODE = 'TB003';
    END IF;

    -- Malformed elements are a caller bug, not an outcome: the whole call fails with TB003.
    BEGIN
        SELECT count(*)::integer, array_agg(x.id), array_agg(x.kind), array_agg(x.debit), array_agg(x.credit),
               array_agg(x.currency), array_agg(x.amount), array_agg(x.code), array_agg(x.meta),
               array_agg(x.timeout), array_agg(x.pending), array_agg(coalesce(x.owner, p_owner)),
               array_agg(x.actor), array_agg(x.key_id), array_agg(x.request), array_agg(x.alone),
               min(x.n) FILTER (WHERE x.problem IS NOT NULL),
               (array_agg(x.problem) FILTER (WHERE x.problem IS NOT NULL))[1]
        INTO v_n, i_id, i_kind, i_debit, i_credit, i_currency, i_amount, i_code, i_meta, i_timeout,
             i_pending, i_owner, i_actor, i_key, i_request, i_alone, v_bad, v_problem
        FROM (SELECT f.*, CASE
                  WHEN NOT f.is_object THEN 'must be an object'
                  WHEN f.id IS NULL THEN 'id is required'
                  WHEN f.owner IS NOT NULL AND p_owner IS NOT NULL THEN 'owner_id is only for calls without p_owner'
                  WHEN f.kind IS NULL OR f.kind NOT IN ('posted', 'pending', 'post_pending', 'void_pending')
                      THEN 'kind must be posted, pending, post_pending or void_pending'
                  WHEN f.kind IN ('posted', 'pending')
                   AND (f.debit IS NULL OR f.credit IS NULL OR f.currency IS NULL OR f.amount IS NULL)
                      THEN 'debit_account_id, credit_account_id, currency and amount are required'
                  WHEN f.kind IN ('posted', 'pending') AND f.pending IS NOT NULL
                      THEN 'pending_id is only for post_pending and void_pending'
                  WHEN f.kind NOT IN ('posted', 'pending') AND f.pending IS NULL THEN 'pending_id is required'
                  WHEN f.kind NOT IN ('posted', 'pending')
                   AND (f.debit IS NOT NULL OR f.credit IS NOT NULL OR f.currency IS NOT NULL)
                      THEN 'accounts and currency of post_pending/void_pending come from the pending transfer'
                  WHEN f.timeout IS NOT NULL AND f.kind <> 'pending' THEN 'timeout_seconds is only for pending'
                  WHEN f.timeout <= 0 THEN 'timeout_seconds must be positive'
                  WHEN f.code !~ '^[a-z][a-z0-9_]*$' OR char_length(f.code) > 63
                      THEN 'code must match ^[a-z][a-z0-9_]{0,62}$'
                  END AS problem
              FROM (SELECT e.n, jsonb_typeof(e.j) = 'object' AS is_object, (e.j->>'id')::uuid AS id,
                           e.j->>'kind' AS kind, (e.j->>'debit_account_id')::uuid AS debit,
                           (e.j->>'credit_account_id')::uuid AS credit, e.j->>'currency' AS currency,
                           CASE WHEN e.j->>'kind' <> 'void_pending' THEN (e.j->>'amount')::bigint END AS amount,
                           coalesce(e.j->>'code', 'transfer') AS code, nullif(e.j->'metadata', 'null') AS meta,
                           (e.j->>'timeout_seconds')::integer AS timeout, (e.j->>'pending_id')::uuid AS pending,
                           (e.j->>'owner_id')::uuid AS owner, coalesce((e.j->>'alone')::boolean, false) AS alone,
                           CASE WHEN e.j ?| '{actor_id,key_id,request_id}' THEN (e.j->>'actor_id')::uuid
                                ELSE ledger.session_setting('techbank.actor_id')::uuid END AS actor,
                           CASE WHEN e.j ?| '{actor_id,key_id,request_id}' THEN (e.j->>'key_id')::uuid
                                ELSE ledger.session_setting('techbank.key_id')::uuid END AS key_id,
                           left(CASE WHEN e.j ?| '{actor_id,key_id,request_id}' THEN e.j->>'request_id'
                                     ELSE ledger.session_setting('techbank.request_id') END, 200) AS request
                    FROM jsonb_array_elements(p_transfers) WITH ORDINALITY AS e(j, n)
                    ORDER BY e.n OFFSET 0) f  -- OFFSET 0: extract each field once, not once per reference
             ) x;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        RAISE EXCEPTION 'invalid transfer batch: %', SQLERRM USING ERRCODE = 'TB003';
    END;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'invalid transfer at index %: %', v_bad - 1, v_problem USING ERRCODE = 'TB003';
    END IF;

    -- Stored transfers are immutable, so the referenced pendings can be read before locking.
    IF array_remove(i_pending, NULL) <> '{}' THEN
        SELECT array_agg(p.debit_account_id), array_agg(p.credit_account_id), array_agg(p.amount),
               array_agg(p.currency), array_agg(p.expires_at), array_agg(p.code)
        INTO pd_debit, pd_credit, pd_amount, pd_currency, pd_expires, pd_code
        FROM (SELECT u.n, t.* FROM unnest(i_pending) WITH ORDINALITY AS u(pid, n)
              LEFT JOIN ledger.transfers t ON t.id = u.pid AND t.kind = 'pending'
              ORDER BY u.n) p;
    END IF;

    -- One statement, sorted by id: concurrent ledger calls cannot deadlock on accounts.  Joining
    -- a precomputed id list (not "id = ANY(...)") keeps the recheck of rows that a concurrent
    -- call just updated cheap.
    a_id := ARRAY(SELECT DISTINCT u.aid FROM unnest(i_debit || i_credit || pd_debit || pd_credit) AS u(aid)
                  WHERE u.aid IS NOT NULL);
    SELECT array_agg(a.id), array_agg(a.owner_id), array_agg(a.code), array_agg(a.currency), array_agg(a.closed), array_agg(a.debits_must_not_exceed_credits),
           array_agg(a.credits_must_not_exceed_debits), array_agg(a.debits_posted), array_agg(a.credits_posted),
           array_agg(a.debits_pending), array_agg(a.credits_pending)
    INTO a_id, a_owner, a_code, a_cur, a_closed, a_dnec, a_cned, a_dp, a_cp, a_dq, a_cq
    FROM (SELECT acc.* FROM unnest(a_id) AS u(aid) JOIN ledger.accounts acc ON acc.id = u.aid
          ORDER BY acc.id FOR UPDATE OF acc) a;
    a_touched := array_fill(false, ARRAY[coalesce(cardinality(a_id), 0)]);

    WITH acc AS (SELECT u.aid, u.k::integer AS k FROM unnest(a_id) WITH ORDINALITY AS u(aid, k)),
         el AS (SELECT u.tid, coalesce(u.pdd, u.d) AS d, coalesce(u.pdc, u.c) AS c, u.pid, u.n
                FROM unnest(i_id, i_debit, i_credit, pd_debit, pd_credit, i_pending)
                    WITH ORDINALITY AS u(tid, d, c, pdd, pdc, pid, n)),
         grp AS (SELECT el.tid, min(el.n)::integer AS n FROM el GROUP BY el.tid)
    SELECT array_agg(x.di), array_agg(x.ci), array_agg(x.grp), array_agg(x.pgrp)
    INTO e_di, e_ci, e_grp, e_pgrp
    FROM (SELECT el.n, ad.k AS di, ac.k AS ci, g.n AS grp, pg.n AS pgrp
          FROM el
          JOIN grp g ON g.tid = el.tid
          LEFT JOIN grp pg ON pg.tid = el.pid
          LEFT JOIN acc ad ON ad.aid = el.d
          LEFT JOIN acc ac ON ac.aid = el.c
          ORDER BY el.n) x;

    r_outcome := array_fill(NULL::text, ARRAY[v_n]);
    r_detail := array_fill(NULL::text, ARRAY[v_n]);
    r_expires := array_fill(NULL::timestamptz, ARRAY[v_n]);
    r_ok := array_fill(NULL::integer, ARRAY[v_n]);

    -- An id that already exists (stored earlier, or earlier in this batch) is detected by the
    -- INSERT's ON CONFLICT when validation passes, and by transfer_differences() before any
    -- failure is reported; either way 'exists*' wins over every other outcome.
    BEGIN
        FOR i IN 1 .. v_n LOOP
            v_kind := i_kind[i]; v_out := NULL; v_det := NULL; v_diff := NULL; v_checked := false;
            v_bound := i_owner[i] IS NOT NULL;  -- the principal's limits bind this transfer

            IF v_kind IN ('posted', 'pending') THEN
                v_amt := i_amount[i]; v_di := e_di[i]; v_ci := e_ci[i];
                IF v_amt <= 0 THEN v_out := 'amount_must_be_positive';
                ELSIF v_bound AND i_code[i] = ANY (p_reserved_codes) THEN v_out := 'code_reserved'; v_det := 'code';
                ELSIF i_debit[i] = i_credit[i] THEN v_out := 'accounts_must_be_different';
                ELSIF v_di IS NULL OR (v_bound AND a_owner[v_di] <> i_owner[i]) THEN v_out := 'account_not_found'; v_det := 'debit_account_id';
                ELSIF v_ci IS NULL THEN v_out := 'account_not_found'; v_det := 'credit_account_id';
                ELSIF v_bound AND a_code[v_ci] = ANY (p_reserved_codes) THEN v_out := 'code_reserved'; v_det := 'credit_account_id';
                ELSIF a_cur[v_di] <> i_currency[i] THEN v_out := 'currency_mismatch'; v_det := 'debit_account_id';
                ELSIF a_cur[v_ci] <> i_currency[i] THEN v_out := 'currency_mismatch'; v_det := 'credit_account_id';
                ELSIF a_closed[v_di] THEN v_out := 'account_closed'; v_det := 'debit_account_id';
                ELSIF a_closed[v_ci] THEN v_out := 'account_closed'; v_det := 'credit_account_id';
                -- Pending amounts count.  Written so no bigint arithmetic can overflow: the CHECKs
                -- guarantee posted + pending <= the other side for flagged accounts, and the
                -- overflow rules keep posted + pending <= max for all accounts.
                ELSIF (CASE WHEN a_dnec[v_di] THEN v_amt > a_cp[v_di] - a_dp[v_di] - a_dq[v_di] ELSE false END)
                    THEN v_out := 'exceeds_credits';
                ELSIF (CASE WHEN a_cned[v_ci] THEN v_amt > a_dp[v_ci] - a_cp[v_ci] - a_cq[v_ci] ELSE false END)
                    THEN v_out := 'exceeds_debits';
                ELSIF v_amt > c_max - a_dp[v_di] - a_dq[v_di] THEN v_out := 'overflows_debits';
                ELSIF v_amt > c_max - a_cp[v_ci] - a_cq[v_ci] THEN v_out := 'overflows_credits';
                ELSE
                    -- Insert before touching balances: of two racing calls with this id exactly one inserts.
                    INSERT INTO ledger.transfers (id, kind, debit_account_id, credit_account_id, amount, currency,
                        code, timeout_seconds, expires_at, metadata)
                    VALUES (i_id[i], v_kind, i_debit[i], i_credit[i], v_amt, i_currency[i], i_code[i],
                        i_timeout[i], v_now + make_interval(secs => i_timeout[i]), i_meta[i])
                    ON CONFLICT (id) DO NOTHING
                    RETURNING * INTO v_t;
                    IF FOUND THEN
                        v_out := 'ok';
                        IF v_kind = 'posted' THEN
                            a_dp[v_di] := a_dp[v_di] + v_amt;
                            a_cp[v_ci] := a_cp[v_ci] + v_amt;
                        ELSE
                            a_dq[v_di] := a_dq[v_di] + v_amt;
                            a_cq[v_ci] := a_cq[v_ci] + v_amt;
                            r_expires[i] := v_t.expires_at;
                            INSERT INTO ledger.open_holds (pending_id, expires_at) VALUES (v_t.id, v_t.expires_at);
                        END IF;
                        a_touched[v_di] := true; a_touched[v_ci] := true;
                    END IF;
                END IF;
            ELSE  -- post_pending / void_pending
                v_pid := i_pending[i]; v_found := false;
                IF pd_debit[i] IS NOT NULL THEN
                    v_found := true; v_di := e_di[i]; v_ci := e_ci[i];
                    v_pdebit := pd_debit[i]; v_pcredit := pd_credit[i]; v_pamt := pd_amount[i];
                    v_pcur := pd_currency[i]; v_pexp := pd_expires[i]; v_pcode := pd_code[i];
                ELSE
                    v_src := r_ok[e_pgrp[i]];  -- created earlier in this batch?
                    IF v_src < i AND i_kind[v_src] = 'pending' THEN
                        v_found := true; v_di := e_di[v_src]; v_ci := e_ci[v_src];
                        v_pdebit := i_debit[v_src]; v_pcredit := i_credit[v_src]; v_pamt := i_amount[v_src];
                        v_pcur := i_currency[v_src]; v_pexp := r_expires[v_src]; v_pcode := i_code[v_src];
                    END IF;
                END IF;

                IF v_kind = 'post_pending' AND i_amount[i] <= 0 THEN v_out := 'amount_must_be_positive';
                ELSIF v_bound AND i_code[i] = ANY (p_reserved_codes) THEN v_out := 'code_reserved'; v_det := 'code';
                ELSIF NOT v_found OR (v_bound AND a_owner[v_di] <> i_owner[i]) THEN v_out := 'pending_transfer_not_found';
                ELSIF v_bound AND v_pcode = ANY (p_reserved_codes) THEN v_out := 'code_reserved'; v_det := 'pending_id';
                ELSE
                    SELECT r.resolution INTO v_res FROM ledger.pending_resolutions r WHERE r.pending_id = v_pid;
                    v_amt := CASE WHEN v_kind = 'post_pending' THEN coalesce(i_amount[i], v_pamt) ELSE v_pamt END;
                    IF v_res IS NOT NULL THEN
                        v_out := CASE v_res WHEN 'posted' THEN 'pending_transfer_already_posted'
                                            WHEN 'voided' THEN 'pending_transfer_already_voided'
                                            ELSE 'pending_transfer_expired' END;
                    ELSIF v_pexp <= v_now THEN
                        v_out := 'pending_transfer_expired';
                        v_diff := ledger.transfer_differences(i_id[i], v_kind, NULL, NULL, i_amount[i], NULL,
                            i_code[i], i_meta[i], NULL, v_pid);
                        v_checked := true;
                        -- Release it now, exactly as expire_pending would (an atomic batch rolls back
                        -- instead, and a transfer alone changes nothing when refused).
                        IF NOT p_atomic AND NOT i_alone[i] AND v_diff IS NULL THEN
                            DELETE FROM ledger.open_holds h WHERE h.pending_id = v_pid;
                            IF FOUND THEN
                                INSERT INTO ledger.pending_resolutions (pending_id, resolution) VALUES (v_pid, 'expired');
                                a_dq[v_di] := a_dq[v_di] - v_pamt; a_cq[v_ci] := a_cq[v_ci] - v_pamt;
                                a_touched[v_di] := true; a_touched[v_ci] := true;
                                v_jn := v_jn + 1; j_type[v_jn] := 'pending_expired'; j_subject[v_jn] := v_pid;
                                j_actor[v_jn] := i_actor[i]; j_key[v_jn] := i_key[i]; j_request[v_jn] := i_request[i];
                                j_payload[v_jn] := ledger.pending_expired_payload(v_pid, v_pamt, v_pcur, v_pdebit, v_pcredit);
                            END IF;
                        END IF;
                    ELSIF v_amt > v_pamt THEN v_out := 'amount_exceeds_pending';
                    ELSE
                        INSERT INTO ledger.transfers (id, kind, debit_account_id, credit_account_id, amount, currency,
                            code, pending_id, metadata)
                        VALUES (i_id[i], v_kind, v_pdebit, v_pcredit, v_amt, v_pcur, i_code[i], v_pid, i_meta[i])
                        ON CONFLICT (id) DO NOTHING
                        RETURNING * INTO v_t;
                        IF FOUND THEN
                            v_out := 'ok';
                            a_dq[v_di] := a_dq[v_di] - v_pamt; a_cq[v_ci] := a_cq[v_ci] - v_pamt;
                            IF v_kind = 'post_pending' THEN
                                a_dp[v_di] := a_dp[v_di] + v_amt; a_cp[v_ci] := a_cp[v_ci] + v_amt;
                            END IF;
                            a_touched[v_di] := true; a_touched[v_ci] := true;
                            INSERT INTO ledger.pending_resolutions (pending_id, resolution, transfer_id)
                            VALUES (v_pid, CASE v_kind WHEN 'post_pending' THEN 'posted' ELSE 'voided' END, v_t.id);
                            DELETE FROM ledger.open_holds h WHERE h.pending_id = v_pid;
                        END IF;
                    END IF;
                END IF;
            END IF;

            IF v_out = 'ok' THEN
                r_ok[e_grp[i]] := i;
                v_jn := v_jn + 1; j_type[v_jn] := 'transfer'; j_subject[v_jn] := v_t.id;
                j_actor[v_jn] := i_actor[i]; j_key[v_jn] := i_key[i]; j_request[v_jn] := i_request[i];
                j_payload[v_jn] := ledger.transfer_payload(v_t);
            ELSE
                IF NOT v_checked THEN
                    v_diff := ledger.transfer_differences(i_id[i], v_kind, i_debit[i], i_credit[i], i_amount[i],
                        i_currency[i], i_code[i], i_meta[i], i_timeout[i], i_pending[i]);
                END IF;
                IF v_diff IS NOT NULL THEN
                    v_out := CASE WHEN v_diff = '' THEN 'exists' ELSE 'exists_with_different_fields' END;
                    v_det := nullif(v_diff, '');
                END IF;
            END IF;
            r_outcome[i] := v_out; r_detail[i] := v_det;
            IF p_atomic AND v_out NOT IN ('ok', 'exists') THEN
                v_fail := i;
                RAISE EXCEPTION USING ERRCODE = 'TB900';
            END IF;
        END LOOP;

        UPDATE ledger.accounts a
        SET debits_posted = u.dp, credits_posted = u.cp, debits_pending = u.dq, credits_pending = u.cq
        FROM unnest(a_id, a_dp, a_cp, a_dq, a_cq, a_touched) AS u(aid, dp, cp, dq, cq, touched)
        WHERE u.touched AND a.id = u.aid;

        PERFORM ledger.journal_append_many(j_type, j_subject, j_payload, j_actor, j_key, j_request);
    EXCEPTION WHEN SQLSTATE 'TB900' THEN
        -- everything above was rolled back; plpgsql variables were not
        r_outcome := array_fill('linked_event_failed'::text, ARRAY[v_n]);
        r_detail := array_fill(NULL::text, ARRAY[v_n]);
        r_outcome[v_fail] := v_out;
        r_detail[v_fail] := v_det;
    END;

    RETURN QUERY
    SELECT (r.n - 1)::integer, r.o, r.d, r.tid, t.kind, t.debit_account_id, t.credit_account_id, t.amount,
           t.currency, t.code, t.pending_id, t.timeout_seconds, t.expires_at, t.metadata, t.created_at
    FROM unnest(i_id, r_outcome, r_detail) WITH ORDINALITY AS r(tid, o, d, n)
    LEFT JOIN ledger.transfers t ON r.o IN ('ok', 'exists') AND t.id = r.tid
    ORDER BY r.n;
END $$;

-- Releases due holds, at most p_limit per call; safe against concurrent sweepers and
-- post/void because the hold row can only be deleted once, under the account locks.
CREATE OR REPLACE FUNCTION ledger.expire_pending(p_limit integer) RETURNS integer
LANGUAGE plpgsql SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_due uuid[];
    v_accounts uuid[];
    v_n integer;
    j_type text[]; j_subject uuid[]; j_payload jsonb[];
BEGIN
    IF coalesce(p_limit, 0) <= 0 THEN RETURN 0; END IF;
    SELECT array_agg(h.pending_id) INTO v_due
    FROM (SELECT pending_id FROM ledger.open_holds WHERE expires_at <= now()
          ORDER BY expires_at LIMIT p_limit) h;
    IF v_due IS NULL THEN RETURN 0; END IF;

    v_accounts := ARRAY(SELECT t.debit_account_id FROM ledger.transfers t WHERE t.id = ANY (v_due)
                        UNION SELECT t.credit_account_id FROM ledger.transfers t WHERE t.id = ANY (v_due));
    PERFORM 1 FROM unnest(v_accounts) AS u(aid) JOIN ledger.accounts a ON a.id = u.aid
    ORDER BY a.id FOR UPDATE OF a;

    WITH gone AS (DELETE FROM ledger.open_holds h WHERE h.pending_id = ANY (v_due) RETURNING h.pending_id),
         done AS (SELECT t.* FROM gone JOIN ledger.transfers t ON t.id = gone.pending_id),
         resolved AS (INSERT INTO ledger.pending_resolutions (pending_id, resolution)
                      SELECT done.id, 'expired' FROM done),
         released AS (UPDATE ledger.accounts a
                      SET debits_pending = a.debits_pending - s.dq, credits_pending = a.credits_pending - s.cq
                      FROM (SELECT x.acc, sum(x.dq)::bigint AS dq, sum(x.cq)::bigint AS cq
                            FROM (SELECT debit_account_id AS acc, amount AS dq, 0 AS cq FROM done
                                  UNION ALL
                                  SELECT credit_account_id, 0, amount FROM done) x
                            GROUP BY x.acc) s
                      WHERE a.id = s.acc)
    SELECT count(*)::integer, array_agg('pending_expired'::text), array_agg(d.id ORDER BY d.seq),
           array_agg(ledger.pending_expired_payload(d.id, d.amount, d.currency, d.debit_account_id,
                     d.credit_account_id) ORDER BY d.seq)
    INTO v_n, j_type, j_subject, j_payload
    FROM done d;

    PERFORM ledger.journal_append_many(j_type, j_subject, j_payload);
    RETURN v_n;
END $$;

-- ---------------------------------------------------------------- privileges
-- Least privilege: an application uses the ledger as a member of ledger_user. That role reads
-- every ledger table and opens accounts (the zero-balance trigger above guards the balances), but
-- changes balances, transfers and the journal only through these functions, which run as their
-- owner (the role that migrates). It cannot UPDATE or DELETE a ledger row.
DO $$ BEGIN
    CREATE ROLE ledger_user NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- it exists (roles are shared by every database of the cluster)
END $$;

ALTER FUNCTION ledger.create_transfers(jsonb, boolean, uuid, text[]) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ledger.expire_pending(integer) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ledger.close_account(uuid) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ledger.journal_append_many(text[], uuid[], jsonb[], uuid[], uuid[], text[]) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ledger.journal_append(text, uuid, jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ledger.sequence_journal(integer) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON ALL TABLES IN SCHEMA ledger FROM ledger_user;
GRANT USAGE ON SCHEMA ledger TO ledger_user;
GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO ledger_user;
GRANT INSERT (id, currency, owner_id, code, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata)
    ON ledger.accounts TO ledger_user;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ledger FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ledger TO ledger_user;

INSERT INTO ledger.schema_migrations (version, name) VALUES
    (1, 'baseline'),
    (2, 'reserved_credit_accounts'),
    (3, 'group_commit');

-- TechBank schema (the marketplace, on top of the ledger's schema)
--
-- SQLSTATEs raised here:
--   TB010  an organization's sub_park_id names something that is not a sub-park
--   TB011  a match decision is final (or a match's parties changed)
--   TB020  an account that may go below zero is not the bank's settlement account

-- Which of TechBank's numbered steps (Sources/TechBank/Migrations) the database has; the newest
-- is the schema version (Schema.version).
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Kept from the releases before numbered migrations, frozen at 2: those releases refuse a database
-- whose version is above their own (1), so one started here by mistake stops instead of applying
-- its old schema over this one. Nothing reads it now.
CREATE TABLE IF NOT EXISTS public.schema_version (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO public.schema_version (singleton, version) VALUES (true, 2);

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

-- Webhooks: an organization's endpoints, each subscribed to journal event types, and the
-- deliveries owed to them. The journal is the outbox: the dispatcher turns events after an
-- endpoint's `after_seq` into deliveries and moves `after_seq` in the same transaction, so no
-- event is skipped or owed twice, whatever crashes.

CREATE TABLE techbank.webhooks (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES techbank.organizations (id),
    url              text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2000),
    event_types      text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 100),
    description      text CHECK (char_length(description) <= 500),
    enabled          boolean NOT NULL DEFAULT true,
    -- The signing secret, sealed (AES-256-GCM, nonce ‖ ciphertext ‖ tag) with a key kept outside
    -- the database, so that a dump alone does not reveal it; the previous one signs too, until.
    secret           bytea NOT NULL,
    previous_secret  bytea,
    previous_until   timestamptz,
    -- Events up to this leaf index are dispatched (or were before the endpoint existed).
    after_seq        bigint NOT NULL CHECK (after_seq >= -1),
    -- Since when every delivery has failed (NULL: the last one succeeded, or none failed yet).
    failing_since    timestamptz,
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- A deleted endpoint keeps its row (without secrets, disabled) so its events stay readable.
    deleted_at       timestamptz,
    CHECK ((previous_secret IS NULL) = (previous_until IS NULL)),
    CHECK (deleted_at IS NULL OR (NOT enabled AND octet_length(secret) = 0))
);
CREATE INDEX webhooks_organization_idx ON techbank.webhooks (organization_id, created_at, id);

CREATE TABLE techbank.webhook_deliveries (
    -- The `webhook-id` header: the same on every attempt.
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES techbank.webhooks (id) ON DELETE CASCADE,
    event_seq        bigint NOT NULL CHECK (event_seq >= 0),
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code integer,
    last_error       text CHECK (char_length(last_error) <= 500),
    -- When a pending delivery is due; while an attempt runs, when it is given up as lost.
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_seq),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON techbank.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_listing_idx ON techbank.webhook_deliveries (webhook_id, created_at DESC, id DESC);

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
GRANT SELECT ON public.schema_migrations TO techbank_app;

INSERT INTO public.schema_migrations (version, name) VALUES
    (1, 'baseline'),
    (2, 'freeze_schema_version'),
    (3, 'webhooks');
