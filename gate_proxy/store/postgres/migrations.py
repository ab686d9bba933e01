"""Versioned PostgreSQL schema. Append new steps; never edit a step that has shipped.

The same logical schema as the SQLite one (gate_proxy/store/migrations.py), version for
version, so "schema version 3" means the same tables on either backend. Differences:

- Every text column that is compared or sorted is ``COLLATE "C"``: the use cases compare
  ISO 8601 timestamps and ids as text, and SQLite compares bytes. A database created with
  a language collation (en_US.UTF-8) would otherwise order them by linguistic rules.
- JSON columns stay TEXT holding the same JSON text as in SQLite (the encoding of
  gate_proxy/store/sqlite/intent_rows.py and rows.py is shared, one place for both).
- The ledger and its checkpoints refuse UPDATE, DELETE and TRUNCATE in triggers.
- ``ledger_head`` (one row) holds the chain's head. Every writing transaction of every
  process locks it (SELECT ... FOR UPDATE) and advances it: the store owns the chain.
"""

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE agents (
            id TEXT COLLATE "C" PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            role TEXT NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
            key_prefix TEXT NOT NULL,
            risk_tier TEXT NOT NULL,
            owner TEXT,
            framework TEXT,
            environment TEXT,
            allowed_policies TEXT,
            allowed_destinations TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT COLLATE "C" NOT NULL,
            updated_at TEXT COLLATE "C" NOT NULL
        );

        CREATE TABLE intents (
            id TEXT COLLATE "C" PRIMARY KEY,
            agent_id TEXT COLLATE "C" NOT NULL,
            agent_name TEXT NOT NULL,
            on_behalf_of TEXT,
            source TEXT NOT NULL,
            destination TEXT COLLATE "C" NOT NULL,
            policy TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            reason_code TEXT,
            block_reason TEXT,
            risk_score DOUBLE PRECISION NOT NULL,
            risk_level TEXT NOT NULL,
            record_count BIGINT,
            estimated_value_usd DOUBLE PRECISION,
            sensitivity_tags TEXT NOT NULL DEFAULT '[]',
            idempotency_key TEXT COLLATE "C",
            duplicate_of TEXT,
            environment TEXT,
            payload_type TEXT,
            payload_size BIGINT NOT NULL DEFAULT 0,
            payload_sha256 TEXT,
            payload_preview TEXT,
            method TEXT,
            url TEXT,
            fingerprint TEXT COLLATE "C",
            shadow INTEGER NOT NULL DEFAULT 0,
            require_approvals INTEGER NOT NULL DEFAULT 1,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT COLLATE "C" NOT NULL,
            expires_at TEXT COLLATE "C",
            decided_at TEXT COLLATE "C",
            decided_by TEXT,
            decision_note TEXT,
            executed_at TEXT COLLATE "C",
            completed_at TEXT COLLATE "C"
        );
        CREATE INDEX intents_agent_created ON intents (agent_id, created_at);
        CREATE INDEX intents_status_expires ON intents (status, expires_at);
        CREATE UNIQUE INDEX intents_idempotency ON intents (agent_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL AND status <> 'duplicate_blocked';

        CREATE TABLE approval_votes (
            intent_id TEXT COLLATE "C" NOT NULL,
            reviewer_id TEXT COLLATE "C" NOT NULL,
            vote TEXT NOT NULL,
            reason TEXT,
            created_at TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (intent_id, reviewer_id)
        );

        CREATE TABLE executions (
            id TEXT COLLATE "C" PRIMARY KEY,
            intent_id TEXT COLLATE "C" NOT NULL,
            agent_id TEXT COLLATE "C" NOT NULL,
            mode TEXT NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            token_hash TEXT NOT NULL,
            token_used INTEGER NOT NULL DEFAULT 0,
            report TEXT,
            created_at TEXT COLLATE "C" NOT NULL,
            expires_at TEXT COLLATE "C" NOT NULL,
            completed_at TEXT COLLATE "C"
        );
        CREATE INDEX executions_intent ON executions (intent_id);

        CREATE TABLE webhooks (
            id TEXT COLLATE "C" PRIMARY KEY,
            intent_id TEXT COLLATE "C" NOT NULL,
            owner_id TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX webhooks_intent ON webhooks (intent_id);

        CREATE TABLE webhook_deliveries (
            webhook_id TEXT COLLATE "C" NOT NULL,
            event TEXT NOT NULL,
            ok INTEGER NOT NULL,
            detail TEXT,
            at TEXT COLLATE "C" NOT NULL
        );

        -- The ledger: append-only, hash-chained. body is the canonical JSON that is hashed.
        CREATE TABLE ledger (
            seq BIGINT PRIMARY KEY CHECK (seq > 0),
            id TEXT COLLATE "C" NOT NULL UNIQUE,
            intent_id TEXT COLLATE "C",
            type TEXT NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL,
            body TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX ledger_intent ON ledger (intent_id, seq);

        CREATE TABLE ledger_checkpoints (
            seq BIGINT PRIMARY KEY,
            hash TEXT NOT NULL,
            created_at TEXT COLLATE "C" NOT NULL,
            key_id TEXT NOT NULL,
            signature TEXT NOT NULL
        );

        CREATE FUNCTION gate_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
        END;
        $$;
        CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
            FOR EACH ROW EXECUTE FUNCTION gate_refuse_change();
        CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
            FOR EACH STATEMENT EXECUTE FUNCTION gate_refuse_change();
        CREATE TRIGGER checkpoint_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoints
            FOR EACH ROW EXECUTE FUNCTION gate_refuse_change();
        CREATE TRIGGER checkpoint_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
            FOR EACH STATEMENT EXECUTE FUNCTION gate_refuse_change();

        -- The head of the chain, one row, locked by every writing transaction. It only
        -- moves forward and cannot be deleted; the ledger itself is the truth (verify
        -- compares the two).
        CREATE TABLE ledger_head (
            singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL,
            checkpoint_seq BIGINT NOT NULL,
            checkpoint_at DOUBLE PRECISION NOT NULL
        );
        INSERT INTO ledger_head (seq, hash, checkpoint_seq, checkpoint_at) VALUES (
            0,
            '0000000000000000000000000000000000000000000000000000000000000000',
            0,
            EXTRACT(EPOCH FROM clock_timestamp())
        );
        CREATE FUNCTION gate_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.seq < OLD.seq OR NEW.checkpoint_seq < OLD.checkpoint_seq THEN
                RAISE EXCEPTION 'ledger_head only moves forward';
            END IF;
            RETURN NEW;
        END;
        $$;
        CREATE TRIGGER ledger_head_forward BEFORE UPDATE ON ledger_head
            FOR EACH ROW EXECUTE FUNCTION gate_head_forward();
        CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head
            FOR EACH ROW EXECUTE FUNCTION gate_refuse_change();
        CREATE TRIGGER ledger_head_no_truncate BEFORE TRUNCATE ON ledger_head
            FOR EACH STATEMENT EXECUTE FUNCTION gate_refuse_change();
        """,
    ),
    (
        2,
        """
        -- Budgets sum a policy's intents over the last day (core/policy.py budgets).
        CREATE INDEX intents_policy_created ON intents (policy, created_at);
        -- The duplicate window looks up one agent+destination+fingerprint (SQLite scans
        -- the agent's intents instead; an index only, the logical schema is the same).
        CREATE INDEX intents_dedupe ON intents (agent_id, destination, fingerprint, created_at);
        """,
    ),
    (
        3,
        """
        -- Several processes on one store: who runs the sweeper, which processes are alive.
        CREATE TABLE leases (
            name TEXT COLLATE "C" PRIMARY KEY,
            holder TEXT COLLATE "C" NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        );

        -- Dashboard sign-ins, shared by every process (the cookie's id only as SHA-256).
        CREATE TABLE dashboard_sessions (
            id_hash TEXT COLLATE "C" PRIMARY KEY,
            key_hash TEXT COLLATE "C" NOT NULL,
            principal_id TEXT NOT NULL,
            csrf_token TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX dashboard_sessions_key ON dashboard_sessions (key_hash);
        """,
    ),
]
