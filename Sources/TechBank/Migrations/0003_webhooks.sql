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

GRANT SELECT, INSERT, UPDATE, DELETE ON techbank.webhooks, techbank.webhook_deliveries TO techbank_app;
