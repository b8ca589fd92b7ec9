//! The store, driven through its public API on every test database: an in-memory SQLite always,
//! and a fresh PostgreSQL database when `TEST_DATABASE_URL` is set. Each test runs its body once
//! per engine and names the engine in every assertion.

mod common;

use chrono::{DateTime, Duration, Utc};
use gateway::config::{DatabaseConfig, Secret};
use gateway::store::api_keys::NewApiKey;
use gateway::store::sessions::{NewSession, Rotation};
use gateway::store::users::{NewUser, ProfileUpdate, User};
use gateway::store::{new_id, now, Pool, Store, StoreError};

/// Runs one raw statement with `$n` parameters on whichever engine `$store` is; the
/// `sqlx::Result<u64>` of rows affected.
macro_rules! exec {
    ($store:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $store.pool() {
            Pool::Sqlite(pool) => sqlx::query($sql)$(.bind($arg))*.execute(pool).await.map(|r| r.rows_affected()),
            Pool::Postgres(pool) => sqlx::query($sql)$(.bind($arg))*.execute(pool).await.map(|r| r.rows_affected()),
        }
    };
}

/// One `i64` (a `COUNT(*)`, say) from a raw query.
macro_rules! scalar {
    ($store:expr, $sql:expr $(, $arg:expr)* $(,)?) => {{
        let value: sqlx::Result<i64> = match $store.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar($sql)$(.bind($arg))*.fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar($sql)$(.bind($arg))*.fetch_one(pool).await,
        };
        value
    }};
}

async fn connect(url: &str) -> Store {
    Store::connect(&DatabaseConfig {
        url: Secret::new(url),
        auto_migrate: true,
        max_connections: 5,
    })
    .await
    .unwrap_or_else(|e| panic!("connecting to {url}: {e:#}"))
}

/// A connected store with every migration applied.
async fn migrated(engine: &str, url: &str) -> Store {
    let store = connect(url).await;
    assert_eq!(
        store.migrate_up().await.unwrap(),
        store.migration_status().await.unwrap().len(),
        "{engine}: a fresh database takes every migration"
    );
    assert_eq!(
        store.engine(),
        engine,
        "the store runs on the engine asked for"
    );
    store
}

fn new_user<'a>(email: &'a str, username: Option<&'a str>, name: &'a str) -> NewUser<'a> {
    NewUser {
        email,
        username,
        name,
        role: "user",
        email_verified: true,
        image: None,
    }
}

/// A user called `tag` (email `tag@example.com`, username `tag`), with a password hash.
async fn user(store: &Store, tag: &str) -> User {
    let email = format!("{tag}@example.com");
    store
        .create_user(
            &new_user(&email, Some(tag), tag),
            Some(&format!("hash-{tag}")),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: creating {tag}: {e}", store.engine()))
}

fn hours(n: i64) -> DateTime<Utc> {
    now() + Duration::hours(n)
}

async fn session(store: &Store, user_id: &str, token: &str, expires_at: DateTime<Utc>) -> String {
    store
        .create_session(&NewSession {
            user_id,
            token_hash: token,
            expires_at,
            ip_address: Some("203.0.113.7"),
            user_agent: Some("store-test"),
        })
        .await
        .unwrap_or_else(|e| panic!("{}: creating a session: {e}", store.engine()))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn is_conflict<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict))
}

// ---------------------------------------------------------------------------------------------
// Migrations

each_database!(
    migrations_apply_report_and_revert_both_ways,
    |engine, url| {
        let store = connect(&url).await;
        let states = |s: Vec<gateway::store::MigrationState>| {
            s.into_iter()
                .map(|m| (m.version, m.description, m.applied))
                .collect::<Vec<_>>()
        };
        let pending = vec![
            (1, "identity".to_string(), false),
            (2, "app data".to_string(), false),
            (3, "metering".to_string(), false),
            (4, "usage scope".to_string(), false),
            (5, "conversations".to_string(), false),
            (6, "key admin scope".to_string(), false),
            (7, "memory store".to_string(), false),
        ];
        let applied = vec![
            (1, "identity".to_string(), true),
            (2, "app data".to_string(), true),
            (3, "metering".to_string(), true),
            (4, "usage scope".to_string(), true),
            (5, "conversations".to_string(), true),
            (6, "key admin scope".to_string(), true),
            (7, "memory store".to_string(), true),
        ];

        assert_eq!(
            states(store.migration_status().await.unwrap()),
            pending,
            "{engine}: a fresh database has every migration pending"
        );
        assert_eq!(store.migrate_up().await.unwrap(), 7, "{engine}: first up");
        assert_eq!(
            states(store.migration_status().await.unwrap()),
            applied,
            "{engine}: after up"
        );
        assert_eq!(
            store.migrate_up().await.unwrap(),
            0,
            "{engine}: up again has nothing to apply"
        );

        // A row in an identity table survives reverting the app-data migration.
        let alice = user(&store, "alice").await;
        exec!(store, "SELECT COUNT(*) FROM thread")
            .unwrap_or_else(|e| panic!("{engine}: thread exists after up: {e}"));

        // 0007 reverts alone: memory history and the agent/run columns go, memories stay.
        exec!(store, "SELECT agent_id, run_id FROM memory")
            .unwrap_or_else(|e| panic!("{engine}: memory.agent_id after up: {e}"));
        exec!(store, "SELECT COUNT(*) FROM memory_history")
            .unwrap_or_else(|e| panic!("{engine}: memory_history after up: {e}"));
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![7],
            "{engine}: down 1 reverts the newest"
        );
        assert!(
            exec!(store, "SELECT COUNT(*) FROM memory_history").is_err(),
            "{engine}: memory_history is gone after reverting 0007"
        );
        exec!(store, "SELECT content FROM memory")
            .unwrap_or_else(|e| panic!("{engine}: memory stays after reverting 0007: {e}"));

        // 0006 reverts alone: the keys' admin scope goes, the keys stay.
        exec!(store, "SELECT admin FROM api_key")
            .unwrap_or_else(|e| panic!("{engine}: api_key.admin after up: {e}"));
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![6],
            "{engine}: down 1 again reverts 0006"
        );
        assert!(
            exec!(store, "SELECT admin FROM api_key").is_err(),
            "{engine}: api_key.admin is gone after reverting 0006"
        );
        exec!(store, "SELECT key_hash FROM api_key")
            .unwrap_or_else(|e| panic!("{engine}: api_key stays after reverting 0006: {e}"));

        // 0005 reverts alone: the conversation columns go, threads and messages stay.
        exec!(store, "SELECT seq, status, cost_usd FROM message")
            .unwrap_or_else(|e| panic!("{engine}: message columns after up: {e}"));
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![5],
            "{engine}: down 1 again reverts 0005"
        );
        assert!(
            exec!(store, "SELECT status FROM message").is_err(),
            "{engine}: message.status is gone after reverting 0005"
        );
        exec!(store, "SELECT content FROM message")
            .unwrap_or_else(|e| panic!("{engine}: message stays after reverting 0005: {e}"));

        // 0004 reverts alone: the scope column goes, the rest of the record stays.
        exec!(store, "SELECT scope FROM usage_record")
            .unwrap_or_else(|e| panic!("{engine}: usage_record.scope after up: {e}"));
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![4],
            "{engine}: down 1 reverts 0004"
        );
        assert!(
            exec!(store, "SELECT scope FROM usage_record").is_err(),
            "{engine}: usage_record.scope is gone after reverting 0004"
        );
        exec!(store, "SELECT outcome FROM usage_record")
            .unwrap_or_else(|e| panic!("{engine}: usage_record stays after reverting 0004: {e}"));

        // 0003 reverts alone: the metering columns and the override table go, usage stays.
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![3],
            "{engine}: down 1 again reverts 0003"
        );
        assert!(
            exec!(store, "SELECT COUNT(*) FROM limit_override").is_err(),
            "{engine}: limit_override is gone after reverting 0003"
        );
        exec!(store, "SELECT prompt_tokens FROM usage_record")
            .unwrap_or_else(|e| panic!("{engine}: usage_record stays after reverting 0003: {e}"));
        assert!(
            exec!(store, "SELECT outcome FROM usage_record").is_err(),
            "{engine}: usage_record.outcome is gone after reverting 0003"
        );
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![2],
            "{engine}: down 1 again reverts 0002"
        );
        assert_eq!(
            states(store.migration_status().await.unwrap()),
            vec![
                (1, "identity".to_string(), true),
                (2, "app data".to_string(), false),
                (3, "metering".to_string(), false),
                (4, "usage scope".to_string(), false),
                (5, "conversations".to_string(), false),
                (6, "key admin scope".to_string(), false),
                (7, "memory store".to_string(), false)
            ],
            "{engine}: after reverting back to 0001"
        );
        for table in [
            "prompt",
            "prompt_favorite",
            "thread",
            "message",
            "attachment",
            "usage_record",
            "memory",
        ] {
            assert!(
                exec!(store, &format!("SELECT COUNT(*) FROM {table}")).is_err(),
                "{engine}: {table} is gone after reverting 0002"
            );
        }
        assert_eq!(
            scalar!(store, r#"SELECT COUNT(*) FROM "user""#).unwrap(),
            1,
            "{engine}: user remains, with its row"
        );
        assert_eq!(
            store.user_by_id(&alice.id).await.unwrap().as_ref(),
            Some(&alice),
            "{engine}: the user reads back after reverting 0002"
        );

        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            vec![1],
            "{engine}: down 1 again reverts 0001"
        );
        assert_eq!(
            states(store.migration_status().await.unwrap()),
            pending,
            "{engine}: all pending after reverting both"
        );
        for table in [
            "\"user\"",
            "\"session\"",
            "\"account\"",
            "\"verification\"",
            "refresh_token",
            "api_key",
        ] {
            assert!(
                exec!(store, &format!("SELECT COUNT(*) FROM {table}")).is_err(),
                "{engine}: {table} is gone after reverting 0001"
            );
        }
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            Vec::<i64>::new(),
            "{engine}: nothing left to revert"
        );

        assert_eq!(
            store.migrate_up().await.unwrap(),
            applied.len(),
            "{engine}: up re-applies all"
        );
        assert_eq!(
            states(store.migration_status().await.unwrap()),
            applied,
            "{engine}: all applied after the round trip"
        );
        assert_eq!(
            scalar!(store, "SELECT COUNT(*) FROM thread").unwrap(),
            0,
            "{engine}: thread is back, empty"
        );
        let again = user(&store, "alice").await;
        assert_eq!(
            store
                .user_for_login("alice")
                .await
                .unwrap()
                .map(|(u, _)| u.id),
            Some(again.id),
            "{engine}: the re-created schema works"
        );
        store.close().await;
    }
);

// ---------------------------------------------------------------------------------------------
// Users

each_database!(users_create_log_in_and_conflict, |engine, url| {
    let store = migrated(engine, &url).await;
    let before = now();
    let alice = store
        .create_user(
            &NewUser {
                email: "alice@example.com",
                username: Some("alice"),
                name: "Alice",
                role: "user",
                email_verified: false,
                image: Some("https://img.example/alice.png"),
            },
            Some("argon2-hash-alice"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(alice.id.len(), 32, "{engine}: a simple uuid id");
    assert_eq!(alice.email, "alice@example.com", "{engine}");
    assert_eq!(alice.name, "Alice", "{engine}");
    assert_eq!(alice.username.as_deref(), Some("alice"), "{engine}");
    assert_eq!(
        alice.image.as_deref(),
        Some("https://img.example/alice.png"),
        "{engine}"
    );
    assert!(!alice.email_verified, "{engine}");
    assert_eq!(alice.role.as_deref(), Some("user"), "{engine}");
    assert!(!alice.is_admin() && !alice.is_banned(), "{engine}");
    assert_eq!(alice.banned, Some(false), "{engine}");
    assert!(alice.created_at >= before, "{engine}");
    assert_eq!(alice.created_at, alice.updated_at, "{engine}");

    let admin = store
        .create_user(
            &NewUser {
                role: "admin",
                ..new_user("root@example.com", None, "Root")
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(admin.is_admin(), "{engine}: role admin");
    assert_eq!(admin.username, None, "{engine}");

    for login in ["alice@example.com", "alice"] {
        let (found, hash) = store
            .user_for_login(login)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{engine}: no user for login {login}"));
        assert_eq!(found, alice, "{engine}: login {login}");
        assert_eq!(
            hash.as_deref(),
            Some("argon2-hash-alice"),
            "{engine}: login {login}"
        );
    }
    let (found, hash) = store
        .user_for_login("root@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, hash),
        (admin.id.clone(), None),
        "{engine}: a user without a password logs in with no hash"
    );
    assert!(
        store.user_for_login("nobody").await.unwrap().is_none(),
        "{engine}: unknown login"
    );
    assert!(
        store
            .user_for_login("ALICE@example.com")
            .await
            .unwrap()
            .is_none(),
        "{engine}: logins match exactly (normalising is the caller's job)"
    );
    assert_eq!(
        store.user_by_email("alice@example.com").await.unwrap(),
        Some(alice.clone()),
        "{engine}: user_by_email"
    );
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap(),
        Some(alice.clone()),
        "{engine}: user_by_id"
    );
    assert_eq!(
        store.password_hash(&alice.id).await.unwrap().as_deref(),
        Some("argon2-hash-alice"),
        "{engine}: password_hash"
    );

    let dup_email = store
        .create_user(
            &new_user("alice@example.com", Some("alice2"), "Other"),
            Some("h"),
            None,
        )
        .await;
    assert!(
        is_conflict(&dup_email),
        "{engine}: duplicate email: {dup_email:?}"
    );
    let dup_username = store
        .create_user(
            &new_user("other@example.com", Some("alice"), "Other"),
            Some("h"),
            None,
        )
        .await;
    assert!(
        is_conflict(&dup_username),
        "{engine}: duplicate username: {dup_username:?}"
    );
    assert!(
        store
            .user_by_email("other@example.com")
            .await
            .unwrap()
            .is_none(),
        "{engine}: a refused user leaves no row"
    );

    // The user and its provider account are one transaction: a taken provider subject
    // leaves no user behind.
    let bob = store
        .create_user(
            &new_user("bob@example.com", None, "Bob"),
            None,
            Some(("google", "google-sub-1")),
        )
        .await
        .unwrap();
    let carol = store
        .create_user(
            &new_user("carol@example.com", Some("carol"), "Carol"),
            None,
            Some(("google", "google-sub-1")),
        )
        .await;
    assert!(
        is_conflict(&carol),
        "{engine}: a provider subject already linked: {carol:?}"
    );
    assert!(
        store
            .user_by_email("carol@example.com")
            .await
            .unwrap()
            .is_none(),
        "{engine}: the user insert was rolled back with its account"
    );
    assert_eq!(
        store
            .user_by_provider_account("google", "google-sub-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob.id),
        "{engine}: the first user keeps the subject"
    );
    assert_eq!(
        scalar!(store, r#"SELECT COUNT(*) FROM "user""#).unwrap(),
        3,
        "{engine}: alice, root and bob only"
    );
    store.close().await;
});

each_database!(users_update_profile, |engine, url| {
    let store = migrated(engine, &url).await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    // Backdate alice so the update's timestamp must differ.
    let then = now() - Duration::days(3);
    assert_eq!(
        exec!(
            store,
            r#"UPDATE "user" SET "createdAt" = $1, "updatedAt" = $1 WHERE "id" = $2"#,
            then,
            &alice.id
        )
        .unwrap(),
        1,
        "{engine}: backdating"
    );

    let before = now();
    let updated = store
        .update_profile(
            &alice.id,
            &ProfileUpdate {
                name: Some("Alice B."),
                username: Some(Some("alice_b")),
                image: Some(Some("https://img.example/a.png")),
            },
        )
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{engine}: alice exists"));
    assert_eq!(updated.id, alice.id, "{engine}");
    assert_eq!(updated.name, "Alice B.", "{engine}");
    assert_eq!(updated.username.as_deref(), Some("alice_b"), "{engine}");
    assert_eq!(
        updated.image.as_deref(),
        Some("https://img.example/a.png"),
        "{engine}"
    );
    assert_eq!(updated.email, alice.email, "{engine}: email untouched");
    assert_eq!(updated.created_at, then, "{engine}: createdAt untouched");
    assert!(
        updated.updated_at >= before && updated.updated_at > then,
        "{engine}: updatedAt moved on: {} (was {then})",
        updated.updated_at
    );
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap(),
        Some(updated.clone()),
        "{engine}: the update is stored"
    );
    assert_eq!(
        scalar!(
            store,
            r#"SELECT COUNT(*) FROM "user" WHERE "displayUsername" = $1"#,
            "alice_b"
        )
        .unwrap(),
        1,
        "{engine}: displayUsername follows username"
    );
    assert_eq!(
        store
            .user_for_login("alice_b")
            .await
            .unwrap()
            .map(|(u, _)| u.id),
        Some(alice.id.clone()),
        "{engine}: the new username logs in"
    );
    assert!(
        store.user_for_login("alice").await.unwrap().is_none(),
        "{engine}: the old username no longer does"
    );

    // Nothing set: only updatedAt changes.
    let same = store
        .update_profile(&alice.id, &ProfileUpdate::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&same.name, &same.username, &same.image),
        (&updated.name, &updated.username, &updated.image),
        "{engine}: an empty update keeps every field"
    );

    // Clearing the username keeps the image; clearing the image keeps the name.
    let cleared = store
        .update_profile(
            &alice.id,
            &ProfileUpdate {
                username: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.username, None, "{engine}: username cleared");
    assert_eq!(
        cleared.image.as_deref(),
        Some("https://img.example/a.png"),
        "{engine}: image kept"
    );
    assert_eq!(cleared.name, "Alice B.", "{engine}: name kept");
    let cleared = store
        .update_profile(
            &alice.id,
            &ProfileUpdate {
                image: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cleared.image, cleared.username, cleared.name.as_str()),
        (None, None, "Alice B."),
        "{engine}: image cleared"
    );
    assert_eq!(
        scalar!(
            store,
            r#"SELECT COUNT(*) FROM "user" WHERE "id" = $1 AND "displayUsername" IS NULL"#,
            &alice.id
        )
        .unwrap(),
        1,
        "{engine}: displayUsername cleared with username"
    );

    let taken = store
        .update_profile(
            &alice.id,
            &ProfileUpdate {
                username: Some(Some("bob")),
                ..Default::default()
            },
        )
        .await;
    assert!(is_conflict(&taken), "{engine}: a taken username: {taken:?}");
    assert_eq!(
        store.user_by_id(&bob.id).await.unwrap(),
        Some(bob.clone()),
        "{engine}: bob untouched"
    );

    assert!(
        store
            .update_profile(
                "no-such-user",
                &ProfileUpdate {
                    name: Some("x"),
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_none(),
        "{engine}: an unknown id updates nothing"
    );

    assert!(
        store.set_role(&bob.id, "admin").await.unwrap(),
        "{engine}: set_role"
    );
    assert!(
        store.user_by_id(&bob.id).await.unwrap().unwrap().is_admin(),
        "{engine}: bob is admin"
    );
    assert!(
        !store.set_role("no-such-user", "admin").await.unwrap(),
        "{engine}: set_role of an unknown id"
    );
    store.close().await;
});

each_database!(users_passwords_and_provider_accounts, |engine, url| {
    let store = migrated(engine, &url).await;
    let bob = store
        .create_user(
            &new_user("bob@example.com", None, "Bob"),
            None,
            Some(("apple", "apple-sub-b")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&bob.id).await.unwrap(),
        None,
        "{engine}: a provider user has no password"
    );
    assert_eq!(
        store.user_for_login("bob@example.com").await.unwrap(),
        Some((bob.clone(), None)),
        "{engine}: no hash to log in with"
    );

    store.set_password(&bob.id, "hash-1").await.unwrap();
    assert_eq!(
        store.password_hash(&bob.id).await.unwrap().as_deref(),
        Some("hash-1"),
        "{engine}: set_password created the credential account"
    );
    assert_eq!(
        store
            .user_for_login("bob@example.com")
            .await
            .unwrap()
            .and_then(|(_, h)| h)
            .as_deref(),
        Some("hash-1"),
        "{engine}: and login sees it"
    );
    store.set_password(&bob.id, "hash-2").await.unwrap();
    assert_eq!(
        store.password_hash(&bob.id).await.unwrap().as_deref(),
        Some("hash-2"),
        "{engine}: set_password again replaces it"
    );
    assert_eq!(
        scalar!(
            store,
            r#"SELECT COUNT(*) FROM "account" WHERE "userId" = $1 AND "providerId" = 'credential'"#,
            &bob.id
        )
        .unwrap(),
        1,
        "{engine}: one credential account"
    );
    assert_eq!(
        store
            .user_by_provider_account("apple", "apple-sub-b")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob.id.clone()),
        "{engine}: the provider account is untouched"
    );

    let alice = user(&store, "alice").await;
    assert!(
        store
            .user_by_provider_account("google", "google-sub-a")
            .await
            .unwrap()
            .is_none(),
        "{engine}: not linked yet"
    );
    store
        .link_provider_account(&alice.id, "google", "google-sub-a")
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_provider_account("google", "google-sub-a")
            .await
            .unwrap(),
        Some(alice.clone()),
        "{engine}: linked"
    );
    assert!(
        store
            .user_by_provider_account("apple", "google-sub-a")
            .await
            .unwrap()
            .is_none(),
        "{engine}: the subject belongs to its provider"
    );
    let twice = store
        .link_provider_account(&alice.id, "google", "google-sub-a")
        .await;
    assert!(
        is_conflict(&twice),
        "{engine}: linking the same subject twice: {twice:?}"
    );
    let stolen = store
        .link_provider_account(&bob.id, "google", "google-sub-a")
        .await;
    assert!(
        is_conflict(&stolen),
        "{engine}: another user linking it: {stolen:?}"
    );
    assert_eq!(
        store
            .user_by_provider_account("google", "google-sub-a")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(alice.id.clone()),
        "{engine}: still alice's"
    );
    // The same subject string at another provider is a different account.
    store
        .link_provider_account(&bob.id, "google", "apple-sub-b")
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_provider_account("google", "apple-sub-b")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob.id.clone()),
        "{engine}: (provider, subject) is the key"
    );
    assert_eq!(
        store.password_hash(&alice.id).await.unwrap().as_deref(),
        Some("hash-alice"),
        "{engine}: linking keeps alice's password"
    );
    store.close().await;
});

each_database!(users_list_pages_newest_first, |engine, url| {
    let store = migrated(engine, &url).await;
    let base = now() - Duration::days(10);
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = user(&store, &format!("user{i}")).await;
        // Distinct creation times, so the order is certain.
        exec!(
            store,
            r#"UPDATE "user" SET "createdAt" = $1 WHERE "id" = $2"#,
            base + Duration::minutes(i),
            &u.id
        )
        .unwrap();
        ids.push(u.id);
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let page = |limit, offset| {
        let store = store.clone();
        async move {
            let (users, total) = store.list_users(limit, offset).await.unwrap();
            (users.into_iter().map(|u| u.id).collect::<Vec<_>>(), total)
        }
    };
    assert_eq!(
        page(2, 0).await,
        (newest_first[0..2].to_vec(), 5),
        "{engine}: page 1"
    );
    assert_eq!(
        page(2, 2).await,
        (newest_first[2..4].to_vec(), 5),
        "{engine}: page 2"
    );
    assert_eq!(
        page(2, 4).await,
        (newest_first[4..5].to_vec(), 5),
        "{engine}: page 3"
    );
    assert_eq!(page(2, 5).await, (vec![], 5), "{engine}: past the end");
    assert_eq!(
        page(100, 0).await,
        (newest_first.clone(), 5),
        "{engine}: everything"
    );
    let (users, _) = store.list_users(1, 0).await.unwrap();
    assert_eq!(
        users[0].created_at,
        base + Duration::minutes(4),
        "{engine}: listed users carry their creation time"
    );
    store.close().await;
});

// ---------------------------------------------------------------------------------------------
// Sessions and refresh tokens

fn rotated_owner(engine: &str, rotation: Rotation) -> gateway::store::sessions::SessionOwner {
    match rotation {
        Rotation::Rotated { owner } => owner,
        other => panic!("{engine}: expected Rotated, got {other:?}"),
    }
}

each_database!(
    refresh_tokens_rotate_and_reuse_kills_the_family,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        let session_expiry = hours(24);
        let sid = session(&store, &alice.id, "session-hash-1", session_expiry).await;
        store
            .add_refresh_token(&sid, &alice.id, "rt-1", hours(720))
            .await
            .unwrap();
        assert_eq!(
            store.session_of_refresh_token("rt-1").await.unwrap(),
            Some((sid.clone(), alice.id.clone())),
            "{engine}: session_of_refresh_token"
        );

        let owner = rotated_owner(
            engine,
            store
                .rotate_refresh_token("rt-1", "rt-2", hours(720))
                .await
                .unwrap(),
        );
        assert_eq!(owner.session_id, sid, "{engine}: the session rotated");
        assert_eq!(owner.user, alice, "{engine}: the session's owner");
        assert_eq!(owner.expires_at, session_expiry, "{engine}: session expiry");
        assert_eq!(
            store.session_of_refresh_token("rt-2").await.unwrap(),
            Some((sid.clone(), alice.id.clone())),
            "{engine}: the successor joins the family"
        );

        // The successor is now the current token.
        let owner = rotated_owner(
            engine,
            store
                .rotate_refresh_token("rt-2", "rt-3", hours(720))
                .await
                .unwrap(),
        );
        assert_eq!(owner.session_id, sid, "{engine}: second rotation");

        // rt-1 again: stolen or replayed. The session and its whole family die.
        match store
            .rotate_refresh_token("rt-1", "rt-evil", hours(720))
            .await
            .unwrap()
        {
            Rotation::Reused { session_id } => {
                assert_eq!(session_id, sid, "{engine}: the reused token's session")
            }
            other => panic!("{engine}: expected Reused, got {other:?}"),
        }
        assert!(
            store.session_owner(&sid).await.unwrap().is_none(),
            "{engine}: the session is gone"
        );
        assert!(
            store
                .session_owner_by_token("session-hash-1")
                .await
                .unwrap()
                .is_none(),
            "{engine}: by token too"
        );
        assert!(
            store
                .session_ids_of_user(&alice.id)
                .await
                .unwrap()
                .is_empty(),
            "{engine}: alice has no sessions"
        );
        for token in ["rt-1", "rt-2", "rt-3", "rt-evil"] {
            assert_eq!(
                store.session_of_refresh_token(token).await.unwrap(),
                None,
                "{engine}: {token} went with the family"
            );
        }
        assert!(
            matches!(
                store
                    .rotate_refresh_token("rt-3", "rt-4", hours(720))
                    .await
                    .unwrap(),
                Rotation::Invalid
            ),
            "{engine}: the newest token died with the family"
        );
        assert!(
            matches!(
                store
                    .rotate_refresh_token("no-such-token", "rt-5", hours(720))
                    .await
                    .unwrap(),
                Rotation::Invalid
            ),
            "{engine}: unknown token"
        );
        assert_eq!(
            store.session_of_refresh_token("rt-5").await.unwrap(),
            None,
            "{engine}: an Invalid rotation stores no successor"
        );
        store.close().await;
    }
);

each_database!(
    refresh_tokens_expired_or_of_an_ended_session_are_invalid,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        let sid = session(&store, &alice.id, "s-live", hours(24)).await;
        store
            .add_refresh_token(&sid, &alice.id, "rt-expired", hours(-1))
            .await
            .unwrap();
        for attempt in 1..=2 {
            assert!(
                matches!(
                    store
                        .rotate_refresh_token("rt-expired", &format!("next-{attempt}"), hours(720))
                        .await
                        .unwrap(),
                    Rotation::Invalid
                ),
                "{engine}: an expired token is Invalid (attempt {attempt}), not Reused"
            );
        }
        assert_eq!(
            store.session_owner(&sid).await.unwrap().map(|o| o.user.id),
            Some(alice.id.clone()),
            "{engine}: an expired token does not end its session"
        );
        assert_eq!(
            store.session_of_refresh_token("next-1").await.unwrap(),
            None,
            "{engine}: no successor for an expired token"
        );

        // A live token of an expired session.
        let old = session(&store, &alice.id, "s-expired", hours(-1)).await;
        store
            .add_refresh_token(&old, &alice.id, "rt-of-expired-session", hours(720))
            .await
            .unwrap();
        assert!(
            matches!(
                store
                    .rotate_refresh_token("rt-of-expired-session", "next-x", hours(720))
                    .await
                    .unwrap(),
                Rotation::Invalid
            ),
            "{engine}: a token of an expired session is Invalid"
        );
        assert_eq!(
            store.session_of_refresh_token("next-x").await.unwrap(),
            None,
            "{engine}: no successor"
        );
        store.close().await;
    }
);

each_database!(sessions_expire_and_resolve_by_id_or_token, |engine, url| {
    let store = migrated(engine, &url).await;
    let alice = user(&store, "alice").await;

    let expired = session(&store, &alice.id, "expired-raw-token", hours(-1)).await;
    assert!(
        store.session_owner(&expired).await.unwrap().is_none(),
        "{engine}: an expired session by id"
    );
    assert!(
        store
            .session_owner_by_token("expired-raw-token")
            .await
            .unwrap()
            .is_none(),
        "{engine}: an expired session by token"
    );

    // better-auth stores its raw session token in `token`; the lookup is by that string.
    let expires = hours(7 * 24);
    let live = session(&store, &alice.id, "better-auth-raw-token.abc123", expires).await;
    let by_token = store
        .session_owner_by_token("better-auth-raw-token.abc123")
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{engine}: a live better-auth session"));
    assert_eq!(by_token.session_id, live, "{engine}");
    assert_eq!(by_token.user, alice, "{engine}");
    assert_eq!(by_token.expires_at, expires, "{engine}");
    let by_id = store
        .session_owner(&live)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{engine}: the live session by id"));
    assert_eq!(
        (by_id.session_id, by_id.user.id),
        (live.clone(), alice.id.clone()),
        "{engine}"
    );
    assert!(
        store
            .session_owner_by_token("better-auth-raw-token")
            .await
            .unwrap()
            .is_none(),
        "{engine}: tokens match exactly"
    );
    assert!(
        store
            .session_owner("no-such-session")
            .await
            .unwrap()
            .is_none(),
        "{engine}: unknown session"
    );
    assert_eq!(
        sorted(store.session_ids_of_user(&alice.id).await.unwrap()),
        sorted(vec![expired, live]),
        "{engine}: session_ids_of_user lists expired ones too"
    );
    store.close().await;
});

each_database!(sessions_delete_one_or_all_but_one, |engine, url| {
    let store = migrated(engine, &url).await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;

    let a1 = session(&store, &alice.id, "a1", hours(24)).await;
    assert!(
        !store.delete_session(&a1, &bob.id).await.unwrap(),
        "{engine}: bob cannot end alice's session"
    );
    assert!(
        store.session_owner(&a1).await.unwrap().is_some(),
        "{engine}: alice's session survives bob's attempt"
    );
    assert!(
        store.delete_session(&a1, &alice.id).await.unwrap(),
        "{engine}: alice ends it"
    );
    assert!(
        store.session_owner(&a1).await.unwrap().is_none(),
        "{engine}: ended"
    );
    assert!(
        !store.delete_session(&a1, &alice.id).await.unwrap(),
        "{engine}: ending it again"
    );

    let s1 = session(&store, &alice.id, "s1", hours(24)).await;
    let s2 = session(&store, &alice.id, "s2", hours(24)).await;
    let s3 = session(&store, &alice.id, "s3", hours(-1)).await;
    let b1 = session(&store, &bob.id, "b1", hours(24)).await;
    store
        .add_refresh_token(&s1, &alice.id, "rt-s1", hours(720))
        .await
        .unwrap();
    store
        .add_refresh_token(&s2, &alice.id, "rt-s2", hours(720))
        .await
        .unwrap();

    let ended = store
        .delete_user_sessions(&alice.id, Some(&s2))
        .await
        .unwrap();
    assert_eq!(
        sorted(ended),
        sorted(vec![s1.clone(), s3.clone()]),
        "{engine}: every session but the kept one ended"
    );
    assert_eq!(
        store.session_ids_of_user(&alice.id).await.unwrap(),
        vec![s2.clone()],
        "{engine}: the kept session remains"
    );
    assert_eq!(
        store.session_ids_of_user(&bob.id).await.unwrap(),
        vec![b1.clone()],
        "{engine}: bob's sessions are untouched"
    );
    assert!(
        matches!(
            store
                .rotate_refresh_token("rt-s1", "rt-s1-next", hours(720))
                .await
                .unwrap(),
            Rotation::Invalid
        ),
        "{engine}: an ended session's refresh token is dead"
    );
    assert!(
        matches!(
            store
                .rotate_refresh_token("rt-s2", "rt-s2-next", hours(720))
                .await
                .unwrap(),
            Rotation::Rotated { .. }
        ),
        "{engine}: the kept session's refresh token works"
    );

    assert_eq!(
        store.delete_user_sessions(&alice.id, None).await.unwrap(),
        vec![s2],
        "{engine}: without keep, every session ends"
    );
    assert!(
        store
            .session_ids_of_user(&alice.id)
            .await
            .unwrap()
            .is_empty(),
        "{engine}: none left"
    );
    assert!(
        store
            .delete_user_sessions(&alice.id, None)
            .await
            .unwrap()
            .is_empty(),
        "{engine}: nothing more to end"
    );
    assert!(
        store.session_owner(&b1).await.unwrap().is_some(),
        "{engine}: bob still signed in"
    );
    store.close().await;
});

each_database!(sessions_list_live_ones_newest_first, |engine, url| {
    let store = migrated(engine, &url).await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let base = now() - Duration::hours(5);
    let mut live = Vec::new();
    for i in 0..3 {
        let owner = if i == 2 { &bob.id } else { &alice.id };
        let sid = session(&store, owner, &format!("live-{i}"), hours(24)).await;
        exec!(
            store,
            r#"UPDATE "session" SET "createdAt" = $1 WHERE "id" = $2"#,
            base + Duration::minutes(i),
            &sid
        )
        .unwrap();
        live.push((sid, owner.clone()));
    }
    for i in 0..2 {
        // Expired, and created most recently: they would head the list if not filtered.
        session(&store, &alice.id, &format!("expired-{i}"), hours(-1)).await;
    }
    let newest_first: Vec<String> = live.iter().rev().map(|(id, _)| id.clone()).collect();

    let (page1, total) = store.list_sessions(2, 0).await.unwrap();
    assert_eq!(total, 3, "{engine}: only live sessions count");
    assert_eq!(
        page1.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        newest_first[0..2].to_vec(),
        "{engine}: page 1"
    );
    let (page2, total) = store.list_sessions(2, 2).await.unwrap();
    assert_eq!(total, 3, "{engine}");
    assert_eq!(
        page2.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        newest_first[2..3].to_vec(),
        "{engine}: page 2"
    );
    let (page3, _) = store.list_sessions(2, 4).await.unwrap();
    assert!(page3.is_empty(), "{engine}: past the end");

    let first = &page1[0];
    assert_eq!(first.user_id, bob.id, "{engine}: the newest is bob's");
    assert_eq!(
        first.created_at,
        base + Duration::minutes(2),
        "{engine}: createdAt"
    );
    assert!(first.expires_at > now(), "{engine}: live");
    assert_eq!(first.ip_address.as_deref(), Some("203.0.113.7"), "{engine}");
    assert_eq!(first.user_agent.as_deref(), Some("store-test"), "{engine}");
    store.close().await;
});

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    refresh_token_rotation_is_atomic_under_concurrency,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        for round in 0..10 {
            let sid = session(&store, &alice.id, &format!("s-{round}"), hours(24)).await;
            let current = format!("rt-{round}");
            store
                .add_refresh_token(&sid, &alice.id, &current, hours(720))
                .await
                .unwrap();

            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..8 {
                let store = store.clone();
                let current = current.clone();
                tasks.spawn(async move {
                    store
                        .rotate_refresh_token(&current, &format!("rt-{round}-next-{i}"), hours(720))
                        .await
                });
            }
            let (mut rotated, mut reused, mut invalid) = (0, 0, 0);
            while let Some(outcome) = tasks.join_next().await {
                match outcome.unwrap() {
                    Ok(Rotation::Rotated { owner }) => {
                        assert_eq!(owner.session_id, sid, "{engine}: round {round}");
                        rotated += 1;
                    }
                    Ok(Rotation::Reused { session_id }) => {
                        assert_eq!(session_id, sid, "{engine}: round {round}");
                        reused += 1;
                    }
                    Ok(Rotation::Invalid) => invalid += 1,
                    Err(e) => panic!("{engine}: round {round}: a concurrent rotation failed: {e}"),
                }
            }
            assert_eq!(
            rotated, 1,
            "{engine}: round {round}: exactly one rotation wins ({reused} reused, {invalid} invalid)"
        );
            assert_eq!(rotated + reused + invalid, 8, "{engine}: round {round}");
            // The losers presented a used token: at least one of them saw the reuse and ended
            // the session (the rest may then find it gone).
            assert!(reused >= 1, "{engine}: round {round}: no reuse detected");
            assert!(
                store.session_owner(&sid).await.unwrap().is_none(),
                "{engine}: round {round}: the replayed family is dead"
            );
        }
        store.close().await;
    }
);

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    refresh_token_replay_racing_a_rotation_never_errors,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        for round in 0..10 {
            let sid = session(&store, &alice.id, &format!("s-{round}"), hours(24)).await;
            let (old, current, next) = (
                format!("old-{round}"),
                format!("cur-{round}"),
                format!("next-{round}"),
            );
            store
                .add_refresh_token(&sid, &alice.id, &old, hours(720))
                .await
                .unwrap();
            rotated_owner(
                engine,
                store
                    .rotate_refresh_token(&old, &current, hours(720))
                    .await
                    .unwrap(),
            );

            // The holder rotates the current token while a thief replays the old one.
            let legit = {
                let (store, current, next) = (store.clone(), current.clone(), next.clone());
                tokio::spawn(async move {
                    store
                        .rotate_refresh_token(&current, &next, hours(720))
                        .await
                })
            };
            let replay = {
                let (store, old) = (store.clone(), old.clone());
                tokio::spawn(async move {
                    store
                        .rotate_refresh_token(&old, "stolen-next", hours(720))
                        .await
                })
            };
            let legit = legit
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{engine}: round {round}: the rotation failed: {e}"));
            let replay = replay
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{engine}: round {round}: the replay failed: {e}"));
            assert!(
                matches!(replay, Rotation::Reused { ref session_id } if *session_id == sid),
                "{engine}: round {round}: the replay is caught: {replay:?}"
            );
            assert!(
                matches!(legit, Rotation::Rotated { .. } | Rotation::Invalid),
                "{engine}: round {round}: the rotation won or found the family dead: {legit:?}"
            );
            assert!(
                store.session_owner(&sid).await.unwrap().is_none(),
                "{engine}: round {round}: the session is dead"
            );
            assert_eq!(
                store.session_of_refresh_token(&next).await.unwrap(),
                None,
                "{engine}: round {round}: the successor died with the family"
            );
        }
        store.close().await;
    }
);

// ---------------------------------------------------------------------------------------------
// API keys

fn key<'a>(
    user_id: &'a str,
    name: &'a str,
    hash: &'a str,
    models: Option<&'a [String]>,
    expires_at: Option<DateTime<Utc>>,
) -> NewApiKey<'a> {
    NewApiKey {
        user_id,
        name,
        prefix: "gw_live_ab",
        key_hash: hash,
        allowed_models: models,
        admin: false,
        expires_at,
    }
}

each_database!(api_keys_create_find_list_and_revoke, |engine, url| {
    let store = migrated(engine, &url).await;
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    assert!(store.set_role(&bob.id, "admin").await.unwrap());

    let models = vec!["gpt-4o-mini".to_string(), "claude-sonnet".to_string()];
    let expires = hours(24 * 30);
    let before = now();
    let k1 = store
        .create_api_key(&key(&alice.id, "ci", "kh-1", Some(&models), Some(expires)))
        .await
        .unwrap();
    assert_eq!(k1.user_id, alice.id, "{engine}");
    assert_eq!(k1.name, "ci", "{engine}");
    assert_eq!(k1.prefix, "gw_live_ab", "{engine}");
    assert_eq!(k1.models(), Some(models.clone()), "{engine}: models()");
    assert_eq!(k1.expires_at, Some(expires), "{engine}: expiry");
    assert_eq!(
        (k1.last_used_at, k1.revoked_at),
        (None, None),
        "{engine}: never used, not revoked"
    );
    assert!(k1.created_at >= before, "{engine}");

    let found = store
        .api_key_by_hash("kh-1")
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{engine}: kh-1 is live"));
    assert_eq!(found.key.id, k1.id, "{engine}");
    assert_eq!(found.key.user_id, alice.id, "{engine}");
    assert_eq!(found.key.models(), Some(models.clone()), "{engine}");
    assert_eq!(found.key.expires_at, Some(expires), "{engine}");
    assert_eq!(found.key.created_at, k1.created_at, "{engine}");
    assert_eq!(found.role.as_deref(), Some("user"), "{engine}: owner role");
    assert_eq!(found.banned, Some(false), "{engine}: owner not banned");

    let k2 = store
        .create_api_key(&key(&alice.id, "all models", "kh-2", None, None))
        .await
        .unwrap();
    assert_eq!(k2.models(), None, "{engine}: NULL allows every model");
    assert_eq!(k2.expires_at, None, "{engine}: no expiry");
    let empty: Vec<String> = Vec::new();
    let k3 = store
        .create_api_key(&key(&alice.id, "none", "kh-3", Some(&empty), None))
        .await
        .unwrap();
    assert_eq!(
        k3.models(),
        Some(vec![]),
        "{engine}: an empty list is not NULL"
    );
    let kb = store
        .create_api_key(&key(&bob.id, "bob's", "kh-bob", None, None))
        .await
        .unwrap();
    assert_eq!(
        store
            .api_key_by_hash("kh-bob")
            .await
            .unwrap()
            .and_then(|k| k.role),
        Some("admin".to_string()),
        "{engine}: the owner's current role"
    );
    assert!(
        store.api_key_by_hash("kh-unknown").await.unwrap().is_none(),
        "{engine}: unknown hash"
    );

    // Distinct creation times make the order certain: k1 oldest, k3 newest.
    let base = now() - Duration::days(1);
    for (i, id) in [&k1.id, &k2.id, &k3.id].into_iter().enumerate() {
        exec!(
            store,
            "UPDATE api_key SET created_at = $1 WHERE id = $2",
            base + Duration::minutes(i as i64),
            id
        )
        .unwrap();
    }
    let ids = |keys: Vec<gateway::store::api_keys::ApiKey>| {
        keys.into_iter().map(|k| k.id).collect::<Vec<_>>()
    };
    let (all, total) = store.list_api_keys(&alice.id, 10, 0).await.unwrap();
    assert_eq!(
        (ids(all), total),
        (vec![k3.id.clone(), k2.id.clone(), k1.id.clone()], 3),
        "{engine}: alice's keys, newest first, never bob's"
    );
    let (page, total) = store.list_api_keys(&alice.id, 2, 0).await.unwrap();
    assert_eq!(
        (ids(page), total),
        (vec![k3.id.clone(), k2.id.clone()], 3),
        "{engine}: page 1"
    );
    let (page, total) = store.list_api_keys(&alice.id, 2, 2).await.unwrap();
    assert_eq!(
        (ids(page), total),
        (vec![k1.id.clone()], 3),
        "{engine}: page 2"
    );
    let (bobs, total) = store.list_api_keys(&bob.id, 10, 0).await.unwrap();
    assert_eq!(
        (ids(bobs), total),
        (vec![kb.id.clone()], 1),
        "{engine}: bob sees only his"
    );
    let (none, total) = store.list_api_keys("no-such-user", 10, 0).await.unwrap();
    assert!(none.is_empty() && total == 0, "{engine}: nobody's keys");
    assert_eq!(
        sorted(store.api_key_hashes_of_user(&alice.id).await.unwrap()),
        vec!["kh-1".to_string(), "kh-2".into(), "kh-3".into()],
        "{engine}: api_key_hashes_of_user"
    );

    // Revoking.
    assert_eq!(
        store.revoke_api_key(&k1.id, &bob.id).await.unwrap(),
        None,
        "{engine}: bob cannot revoke alice's key"
    );
    assert!(
        store.api_key_by_hash("kh-1").await.unwrap().is_some(),
        "{engine}: and it still works"
    );
    assert_eq!(
        store.revoke_api_key(&k1.id, &alice.id).await.unwrap(),
        Some("kh-1".to_string()),
        "{engine}: the owner revokes, learning the hash"
    );
    assert!(
        store.api_key_by_hash("kh-1").await.unwrap().is_none(),
        "{engine}: a revoked key is not found"
    );
    assert_eq!(
        store.revoke_api_key(&k1.id, &alice.id).await.unwrap(),
        None,
        "{engine}: revoking twice"
    );
    assert_eq!(
        store
            .revoke_api_key("no-such-key", &alice.id)
            .await
            .unwrap(),
        None,
        "{engine}: an unknown key"
    );
    let (all, total) = store.list_api_keys(&alice.id, 10, 0).await.unwrap();
    assert_eq!(total, 3, "{engine}: revoked keys still listed");
    let revoked: Vec<_> = all
        .iter()
        .filter(|k| k.revoked_at.is_some())
        .map(|k| k.id.clone())
        .collect();
    assert_eq!(revoked, vec![k1.id.clone()], "{engine}: revoked_at shows");
    assert!(
        store.api_key_by_hash("kh-2").await.unwrap().is_some(),
        "{engine}: other keys unaffected"
    );
    store.close().await;
});

// ---------------------------------------------------------------------------------------------
// Verification tokens

each_database!(verification_tokens_work_once_and_expire, |engine, url| {
    let store = migrated(engine, &url).await;
    store
        .create_verification("reset:live", "user-123", hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.take_verification("reset:live").await.unwrap(),
        Some("user-123".to_string()),
        "{engine}: first take"
    );
    assert_eq!(
        store.take_verification("reset:live").await.unwrap(),
        None,
        "{engine}: second take"
    );

    store
        .create_verification("reset:old", "user-456", hours(-1))
        .await
        .unwrap();
    assert_eq!(
        store.take_verification("reset:old").await.unwrap(),
        None,
        "{engine}: expired"
    );
    assert_eq!(
        scalar!(
            store,
            r#"SELECT COUNT(*) FROM "verification" WHERE "identifier" = $1"#,
            "reset:old"
        )
        .unwrap(),
        0,
        "{engine}: an expired token is deleted when presented"
    );
    assert_eq!(
        store.take_verification("reset:unknown").await.unwrap(),
        None,
        "{engine}: unknown"
    );

    // Taking one identifier leaves the others.
    store
        .create_verification("reset:a", "va", hours(1))
        .await
        .unwrap();
    store
        .create_verification("reset:b", "vb", hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.take_verification("reset:a").await.unwrap().as_deref(),
        Some("va"),
        "{engine}"
    );
    assert_eq!(
        store.take_verification("reset:b").await.unwrap().as_deref(),
        Some("vb"),
        "{engine}: b survived taking a"
    );
    store.close().await;
});

// ---------------------------------------------------------------------------------------------
// Deleting a user

/// Every table with a user's rows, and its user column.
const USER_TABLES: [(&str, &str); 11] = [
    ("\"session\"", "\"userId\""),
    ("\"account\"", "\"userId\""),
    ("refresh_token", "user_id"),
    ("api_key", "user_id"),
    ("prompt", "user_id"),
    ("prompt_favorite", "user_id"),
    ("thread", "user_id"),
    ("message", "user_id"),
    ("attachment", "user_id"),
    ("usage_record", "user_id"),
    ("memory", "user_id"),
];

async fn row_counts(store: &Store, user_id: &str) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for (table, column) in USER_TABLES {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
        out.push((table, scalar!(store, &sql, user_id).unwrap()));
    }
    out
}

/// A user with a row in every table: session, refresh token, API key, and app data.
async fn populate(store: &Store, user: &User) {
    let engine = store.engine();
    let uid = user.id.as_str();
    let sid = session(store, uid, &format!("tok-{uid}"), hours(24)).await;
    store
        .add_refresh_token(&sid, uid, &format!("rt-{uid}"), hours(720))
        .await
        .unwrap();
    let key = store
        .create_api_key(&key(uid, "k", &format!("kh-{uid}"), None, None))
        .await
        .unwrap();
    let at = Utc::now();
    let (prompt, thread, message) = (new_id(), new_id(), new_id());
    let inserts: Vec<sqlx::Result<u64>> = vec![
        exec!(
            store,
            "INSERT INTO prompt (id, user_id, name, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            &prompt,
            uid,
            "greeting",
            "Say hello",
            at
        ),
        exec!(
            store,
            "INSERT INTO prompt_favorite (user_id, prompt_id, created_at) VALUES ($1, $2, $3)",
            uid,
            &prompt,
            at
        ),
        exec!(
            store,
            "INSERT INTO thread (id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
            &thread,
            uid,
            "a thread",
            at
        ),
        exec!(
            store,
            "INSERT INTO message (id, thread_id, user_id, role, content, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &message,
            &thread,
            uid,
            "user",
            "hello",
            at
        ),
        exec!(
            store,
            "INSERT INTO attachment (id, user_id, message_id, filename, content_type, size_bytes, sha256, storage_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            new_id(),
            uid,
            &message,
            "a.txt",
            "text/plain",
            5_i64,
            "2cf24dba",
            "files/a.txt",
            at
        ),
        exec!(
            store,
            "INSERT INTO usage_record (request_id, user_id, api_key_id, thread_id, message_id, route, model, status, prompt_tokens, cost_usd, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            new_id(),
            uid,
            &key.id,
            &thread,
            &message,
            "/v1/chat/completions",
            "gpt-4o-mini",
            200_i32,
            12_i64,
            0.0001_f64,
            at
        ),
        exec!(
            store,
            "INSERT INTO memory (id, user_id, content, content_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            new_id(),
            uid,
            "likes tea",
            "hash-tea",
            at
        ),
    ];
    for (i, inserted) in inserts.into_iter().enumerate() {
        assert_eq!(
            inserted.unwrap_or_else(|e| panic!("{engine}: insert {i}: {e}")),
            1,
            "{engine}: insert {i}"
        );
    }
}

each_database!(
    deleting_a_user_deletes_everything_of_theirs_only,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        populate(&store, &alice).await;
        populate(&store, &bob).await;

        let bob_before = row_counts(&store, &bob.id).await;
        for (table, n) in row_counts(&store, &alice.id).await {
            assert_eq!(n, 1, "{engine}: alice has one row in {table}");
        }

        assert!(
            store.delete_user(&alice.id).await.unwrap(),
            "{engine}: delete_user"
        );
        for (table, n) in row_counts(&store, &alice.id).await {
            assert_eq!(n, 0, "{engine}: alice's rows in {table} went with her");
        }
        assert_eq!(
            row_counts(&store, &bob.id).await,
            bob_before,
            "{engine}: bob's rows all remain"
        );
        assert!(
            store.user_by_id(&alice.id).await.unwrap().is_none(),
            "{engine}: alice is gone"
        );
        assert!(
            store
                .api_key_by_hash(&format!("kh-{}", alice.id))
                .await
                .unwrap()
                .is_none(),
            "{engine}: her key no longer authenticates"
        );
        assert!(
            store
                .api_key_by_hash(&format!("kh-{}", bob.id))
                .await
                .unwrap()
                .is_some(),
            "{engine}: bob's does"
        );
        assert!(
            store
                .session_owner_by_token(&format!("tok-{}", bob.id))
                .await
                .unwrap()
                .is_some(),
            "{engine}: bob's session lives"
        );
        assert!(
            !store.delete_user(&alice.id).await.unwrap(),
            "{engine}: deleting again"
        );
        store.close().await;
    }
);

// ---------------------------------------------------------------------------------------------
// Timestamps

each_database!(
    timestamps_round_trip_with_millisecond_precision,
    |engine, url| {
        let store = migrated(engine, &url).await;

        let before = now();
        let alice = user(&store, "alice").await;
        let after = now();
        assert_eq!(
            before.timestamp_subsec_nanos() % 1_000_000,
            0,
            "now() is whole milliseconds"
        );
        assert!(
            before <= alice.created_at && alice.created_at <= after,
            "{engine}: createdAt {} is the now() of the insert, between {before} and {after}",
            alice.created_at
        );
        assert_eq!(
            alice.created_at.timestamp_subsec_nanos() % 1_000_000,
            0,
            "{engine}: createdAt is whole milliseconds"
        );
        assert_eq!(
            store
                .user_by_id(&alice.id)
                .await
                .unwrap()
                .unwrap()
                .created_at,
            alice.created_at,
            "{engine}: createdAt reads back exactly"
        );

        // Chosen instants, bound and read back exactly: an ordinary one, one on a whole second
        // (no fraction at all), one at .999, and one with the millisecond .001.
        let whole_second = DateTime::from_timestamp(4_102_444_800, 0).unwrap(); // 2100-01-01
        let instants = [
            hours(2),
            whole_second,
            DateTime::from_timestamp(4_102_444_800, 999_000_000).unwrap(),
            DateTime::from_timestamp(4_102_444_801, 1_000_000).unwrap(),
        ];
        for (i, at) in instants.into_iter().enumerate() {
            let sid = session(&store, &alice.id, &format!("t-{i}"), at).await;
            let owner = store
                .session_owner(&sid)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{engine}: session expiring {at} is live"));
            assert_eq!(owner.expires_at, at, "{engine}: expiresAt round trip");

            let k = store
                .create_api_key(&key(&alice.id, "t", &format!("kh-t-{i}"), None, Some(at)))
                .await
                .unwrap();
            assert_eq!(k.expires_at, Some(at), "{engine}: expires_at (RETURNING)");
            let found = store
                .api_key_by_hash(&format!("kh-t-{i}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                found.key.expires_at,
                Some(at),
                "{engine}: expires_at read back"
            );
            assert_eq!(
                found.key.created_at, k.created_at,
                "{engine}: created_at read back"
            );
        }

        // A timestamp finer than a millisecond comes back within one.
        let fine = Utc::now() + Duration::hours(3) + Duration::nanoseconds(123_456);
        let sid = session(&store, &alice.id, "t-fine", fine).await;
        let back = store.session_owner(&sid).await.unwrap().unwrap().expires_at;
        assert!(
            (back - fine).abs() < Duration::milliseconds(1),
            "{engine}: {back} vs {fine}"
        );

        // Ordering by stored time is chronological whatever the fraction: list_sessions is
        // newest first across a whole-second createdAt and ones just either side of it.
        let base = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let created = [
            base - Duration::milliseconds(1),
            base,
            base + Duration::milliseconds(1),
            base + Duration::milliseconds(100),
        ];
        exec!(store, r#"DELETE FROM "session""#).unwrap();
        let mut ids = Vec::new();
        for (i, at) in created.into_iter().enumerate() {
            let sid = session(&store, &alice.id, &format!("o-{i}"), hours(1)).await;
            exec!(
                store,
                r#"UPDATE "session" SET "createdAt" = $1 WHERE "id" = $2"#,
                at,
                &sid
            )
            .unwrap();
            ids.push(sid);
        }
        let (listed, _) = store.list_sessions(10, 0).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            ids.iter().rev().cloned().collect::<Vec<_>>(),
            "{engine}: newest first"
        );
        assert_eq!(
            listed.iter().map(|s| s.created_at).collect::<Vec<_>>(),
            created.iter().rev().copied().collect::<Vec<_>>(),
            "{engine}: createdAt round trip"
        );
        store.close().await;
    }
);

// Usage batches: written whole in one go; a record whose user or key was deleted meanwhile is
// kept with those references NULL rather than failing its batch.
each_database!(
    usage_batches_survive_owners_deleted_meanwhile,
    |engine, url| {
        let store = migrated(engine, &url).await;
        let alice = user(&store, "alice").await;
        let record = |user_id: Option<&str>, tokens: u64| gateway::usage::UsageRecord {
            request_id: format!("req-{tokens}"),
            user_id: user_id.map(str::to_string),
            api_key_id: user_id.map(|_| "no-such-key".to_string()),
            route: "chat.completions".into(),
            model: Some("m".into()),
            status: 200,
            outcome: "complete".into(),
            usage: gateway::usage::TokenUsage {
                prompt_tokens: tokens,
                ..Default::default()
            },
            cost_usd: 0.5,
            created_at: gateway::store::now(),
            ..Default::default()
        };
        let good: Vec<_> = (1..=300).map(|n| record(None, n)).collect();
        assert_eq!(store.insert_usage(&good).await.unwrap(), 300, "{engine}");
        let mixed = vec![
            record(Some(&alice.id), 1000),
            record(Some("deleted-user"), 2000),
        ];
        assert_eq!(store.insert_usage(&mixed).await.unwrap(), 2, "{engine}");
        assert_eq!(
            scalar!(store, "SELECT COUNT(*) FROM usage_record").unwrap(),
            302,
            "{engine}"
        );
        assert_eq!(
            scalar!(
                store,
                "SELECT COUNT(*) FROM usage_record WHERE user_id IS NULL AND prompt_tokens = 2000"
            )
            .unwrap(),
            1,
            "{engine}: the deleted user's record is kept without its user"
        );
        assert_eq!(
            scalar!(
                store,
                "SELECT COUNT(*) FROM usage_record WHERE user_id = $1 AND api_key_id IS NULL",
                &alice.id
            )
            .unwrap(),
            1,
            "{engine}: a live user's record keeps its user, the unknown key goes NULL"
        );
        store.close().await;
    }
);

// ---------------------------------------------------------------------------------------------
// Memories

each_database!(
    memories_keep_one_row_per_fact_a_history_and_their_owner,
    |engine, url| {
        use gateway::store::memories::MemoryScope;
        let store = migrated(engine, &url).await;
        let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
        let mine = MemoryScope::user(&alice.id);
        let tea = store
            .add_memory(
                &mine,
                "Likes green tea",
                Some(r#"{"source":"chat"}"#),
                Some(&[1, 2, 3, 4]),
            )
            .await
            .unwrap()
            .expect("added");
        assert_eq!(tea.content, "Likes green tea", "{engine}");
        assert_eq!(
            tea.metadata.as_deref(),
            Some(r#"{"source":"chat"}"#),
            "{engine}"
        );
        // The same fact again (case and spacing aside) is not a second memory.
        assert!(
            store
                .add_memory(&mine, "  likes green  TEA ", None, None)
                .await
                .unwrap()
                .is_none(),
            "{engine}: a duplicate was added"
        );
        // Bob may keep the same fact: hashes are per user.
        let bobs = MemoryScope::user(&bob.id);
        let bob_tea = store
            .add_memory(&bobs, "Likes green tea", None, None)
            .await
            .unwrap()
            .unwrap();
        let agent = MemoryScope {
            user_id: &alice.id,
            agent_id: Some("travel"),
            run_id: None,
        };
        let trip = store
            .add_memory(&agent, "Flies to Lisbon in May", None, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(trip.agent_id.as_deref(), Some("travel"), "{engine}");

        assert_eq!(
            store.memories(&mine, 10, 0).await.unwrap().len(),
            2,
            "{engine}: all of alice's"
        );
        let narrowed = store.memories(&agent, 10, 0).await.unwrap();
        assert_eq!(narrowed, vec![trip.clone()], "{engine}: the agent's only");
        // Another user's id is not found, for reading, changing or deleting.
        assert_eq!(
            store.memory(&bob.id, &tea.id).await.unwrap(),
            None,
            "{engine}"
        );
        assert!(
            store
                .update_memory(&bob.id, &tea.id, "x", None)
                .await
                .unwrap()
                .is_none(),
            "{engine}"
        );
        assert!(
            !store.delete_memory(&bob.id, &tea.id).await.unwrap(),
            "{engine}"
        );

        let changed = store
            .update_memory(&alice.id, &tea.id, "Likes black tea", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.content, "Likes black tea", "{engine}");
        assert!(changed.updated_at >= tea.updated_at, "{engine}");
        // Keyword search: the changed text is found, within the owner's memories only, and the
        // search engine's own syntax in a query is just words.
        let found = store
            .keyword_search(&mine, "Which TEA do I like?", 5)
            .await
            .unwrap();
        assert_eq!(
            found.first().map(|(m, _)| m.id.as_str()),
            Some(tea.id.as_str()),
            "{engine}"
        );
        assert!(
            store
                .keyword_search(&mine, "green", 5)
                .await
                .unwrap()
                .is_empty(),
            "{engine}: old text"
        );
        assert!(
            store
                .keyword_search(&bobs, "lisbon", 5)
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );
        let odd = store
            .keyword_search(&mine, r#"lisbon" OR NEAR( * & | ! :"#, 5)
            .await
            .unwrap();
        assert_eq!(odd.len(), 1, "{engine}: {odd:?}");
        assert!(
            store
                .keyword_search(&mine, "?!", 5)
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );
        // Changed into a fact the user already has: a conflict, nothing changed.
        let refused = store
            .update_memory(&alice.id, &trip.id, "likes black tea", None)
            .await;
        assert!(is_conflict(&refused), "{engine}: {refused:?}");
        assert!(
            store.delete_memory(&alice.id, &tea.id).await.unwrap(),
            "{engine}"
        );
        let events: Vec<_> = store
            .memory_history(&alice.id, &tea.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.old_memory, e.new_memory))
            .collect();
        assert_eq!(
            events,
            vec![
                ("ADD".into(), None, Some("Likes green tea".into())),
                (
                    "UPDATE".into(),
                    Some("Likes green tea".into()),
                    Some("Likes black tea".into())
                ),
                ("DELETE".into(), Some("Likes black tea".into()), None),
            ],
            "{engine}"
        );
        assert!(
            store
                .memory_history(&bob.id, &tea.id)
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );

        // Deleting all of a scope: the agent's go, the rest stay; each gets its DELETE.
        assert_eq!(store.delete_memories(&agent).await.unwrap(), 1, "{engine}");
        assert_eq!(
            store
                .memory_history(&alice.id, &trip.id)
                .await
                .unwrap()
                .len(),
            2,
            "{engine}"
        );
        assert_eq!(
            store.delete_memories(&mine).await.unwrap(),
            0,
            "{engine}: nothing left"
        );
        assert_eq!(
            store.memories(&bobs, 10, 0).await.unwrap(),
            vec![bob_tea],
            "{engine}"
        );
        // A deleted user's memories and history go with them.
        store.delete_user(&bob.id).await.unwrap();
        let left: i64 = scalar!(
            store,
            "SELECT COUNT(*) FROM memory_history WHERE user_id = $1",
            &bob.id
        )
        .unwrap();
        assert_eq!(left, 0, "{engine}");
        store.close().await;
    }
);
