-- Group commit: one ledger.create_transfers call may carry transfers of several callers, each with
-- its own principal and its own journal attribution, so that concurrent single transfers share one
-- transaction (one WAL flush) without sharing anything else.
--
-- Per element of p_transfers, beside the transfer's own fields:
--   owner_id    the principal this transfer acts for, in a call without p_owner (TB003 otherwise).
--               The effective owner of an element is owner_id, else p_owner; an element with an
--               owner is bound by it and by p_reserved_codes exactly as step 2 describes for
--               p_owner; an element without one acts for the ledger's operator.
--   alone       true: the transfer is an atomic batch of its own within the call: its refusal
--               changes nothing (an expired hold it resolves is left for expire_pending).
--   actor_id, key_id, request_id
--               whom its journal entries name. An element with none of the three keys is
--               journaled with the session's settings (techbank.actor_id, techbank.key_id,
--               techbank.request_id), as before.

-- Appends entries (in array order) to this backend's shard under one head lock. Entry k names
-- p_actors[k], p_keys[k] and p_requests[k]; without the arrays, every entry names the session's
-- settings.
DROP FUNCTION ledger.journal_append_many(text[], uuid[], jsonb[]);
CREATE FUNCTION ledger.journal_append_many(p_types text[], p_subjects uuid[], p_payloads jsonb[],
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
ALTER FUNCTION ledger.journal_append_many(text[], uuid[], jsonb[], uuid[], uuid[], text[])
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION ledger.journal_append_many(text[], uuid[], jsonb[], uuid[], uuid[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.journal_append_many(text[], uuid[], jsonb[], uuid[], uuid[], text[]) TO ledger_user;

-- As in step 2, with each element's owner and attribution (above).
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

-- CREATE OR REPLACE resets what ALTER FUNCTION set; privileges are kept.
ALTER FUNCTION ledger.create_transfers(jsonb, boolean, uuid, text[]) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
