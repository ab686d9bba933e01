"""Versioned SQLite schema. Append new steps; never edit a step that has shipped."""

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            key_prefix TEXT NOT NULL,
            risk_tier TEXT NOT NULL,
            owner TEXT,
            framework TEXT,
            environment TEXT,
            allowed_policies TEXT,
            allowed_destinations TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE intents (
            id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            agent_name TEXT NOT NULL,
            on_behalf_of TEXT,
            source TEXT NOT NULL,
            destination TEXT NOT NULL,
            policy TEXT NOT NULL,
            status TEXT NOT NULL,
            reason_code TEXT,
            block_reason TEXT,
            risk_score REAL NOT NULL,
            risk_level TEXT NOT NULL,
            record_count INTEGER,
            estimated_value_usd REAL,
            sensitivity_tags TEXT NOT NULL DEFAULT '[]',
            idempotency_key TEXT,
            duplicate_of TEXT,
            environment TEXT,
            payload_type TEXT,
            payload_size INTEGER NOT NULL DEFAULT 0,
            payload_sha256 TEXT,
            payload_preview TEXT,
            method TEXT,
            url TEXT,
            fingerprint TEXT,
            shadow INTEGER NOT NULL DEFAULT 0,
            require_approvals INTEGER NOT NULL DEFAULT 1,
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            expires_at TEXT,
            decided_at TEXT,
            decided_by TEXT,
            decision_note TEXT,
            executed_at TEXT,
            completed_at TEXT
        );
        CREATE INDEX intents_agent_created ON intents (agent_id, created_at);
        CREATE INDEX intents_status_expires ON intents (status, expires_at);
        CREATE UNIQUE INDEX intents_idempotency ON intents (agent_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL AND status != 'duplicate_blocked';

        CREATE TABLE approval_votes (
            intent_id TEXT NOT NULL,
            reviewer_id TEXT NOT NULL,
            vote TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (intent_id, reviewer_id)
        );

        CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            intent_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            token_used INTEGER NOT NULL DEFAULT 0,
            report TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            completed_at TEXT
        );
        CREATE INDEX executions_intent ON executions (intent_id);

        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            intent_id TEXT NOT NULL,
            owner_id TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX webhooks_intent ON webhooks (intent_id);

        CREATE TABLE webhook_deliveries (
            webhook_id TEXT NOT NULL,
            event TEXT NOT NULL,
            ok INTEGER NOT NULL,
            detail TEXT,
            at TEXT NOT NULL
        );

        -- The ledger: append-only, hash-chained. body is the canonical JSON that is hashed.
        CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            intent_id TEXT,
            type TEXT NOT NULL,
            created_at TEXT NOT NULL,
            body TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX ledger_intent ON ledger (intent_id, seq);
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
            BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
            BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

        CREATE TABLE ledger_checkpoints (
            seq INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature TEXT NOT NULL
        );
        CREATE TRIGGER checkpoint_no_update BEFORE UPDATE ON ledger_checkpoints
            BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
        CREATE TRIGGER checkpoint_no_delete BEFORE DELETE ON ledger_checkpoints
            BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
        """,
    ),
    (
        2,
        """
        -- Budgets sum a policy's intents over the last day (core/policy.py budgets).
        CREATE INDEX intents_policy_created ON intents (policy, created_at);
        """,
    ),
    (
        3,
        """
        -- Several processes on one store: who runs the sweeper, which processes are alive.
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL
        );

        -- Dashboard sign-ins, shared by every process (the cookie's id only as SHA-256).
        CREATE TABLE dashboard_sessions (
            id_hash TEXT PRIMARY KEY,
            key_hash TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            csrf_token TEXT NOT NULL,
            created REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE INDEX dashboard_sessions_key ON dashboard_sessions (key_hash);
        """,
    ),
    (
        4,
        """
        -- The duplicate window looks up one agent's same request (destination and
        -- fingerprint) since a moment: without this, a scan of the agent's recent intents
        -- inside the write lock (PostgreSQL has had it since its version 2).
        CREATE INDEX intents_dedupe ON intents (agent_id, destination, fingerprint, created_at);
        """,
    ),
]
