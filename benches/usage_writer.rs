//! Criterion benchmark of the usage writer's database side: one batch of usage records, as the
//! background writer hands it to the store, into a file SQLite database (the default) with a
//! real user and API key behind every record, so the foreign-key checks and every index of
//! `usage_record` are paid as in production. With `BENCH_POSTGRES_URL` set, PostgreSQL too.
//!
//! cargo bench --bench usage_writer

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway::config::{DatabaseConfig, Secret};
use gateway::store::api_keys::{ApiKey, NewApiKey};
use gateway::store::users::NewUser;
use gateway::store::Store;
use gateway::usage::{TokenUsage, UsageRecord};

async fn store(url: &str) -> Store {
    let store = Store::connect(&DatabaseConfig {
        url: Secret::new(url),
        auto_migrate: true,
        max_connections: 4,
    })
    .await
    .expect("open the bench database");
    store.migrate_up().await.expect("migrate");
    store
}

async fn owner(store: &Store) -> ApiKey {
    let email = format!("bench-{}@example.com", gateway::store::new_id());
    let user = store
        .create_user(
            &NewUser {
                email: &email,
                username: None,
                name: "bench",
                role: "user",
                email_verified: true,
                image: None,
            },
            None,
            None,
        )
        .await
        .expect("user");
    let hash = gateway::store::new_id();
    store
        .create_api_key(&NewApiKey {
            user_id: &user.id,
            name: "bench",
            prefix: "sk-bench",
            key_hash: &hash,
            allowed_models: None,
            admin: false,
            expires_at: None,
        })
        .await
        .expect("key")
}

fn records(key: &ApiKey, n: usize) -> Vec<UsageRecord> {
    (0..n)
        .map(|i| UsageRecord {
            request_id: format!("{:032x}", i),
            user_id: Some(key.user_id.clone()),
            api_key_id: Some(key.id.clone()),
            route: "chat.completions".into(),
            model: Some("gpt-4o-mini".into()),
            provider: Some("openai".into()),
            upstream_model: Some("gpt-4o-mini-2024-07-18".into()),
            status: 200,
            outcome: "complete".into(),
            stream: i % 2 == 0,
            usage: TokenUsage {
                prompt_tokens: 42,
                completion_tokens: 128,
                ..TokenUsage::default()
            },
            cost_usd: 0.000083,
            latency_ms: 412,
            ttfb_ms: Some(95),
            created_at: gateway::store::now(),
            ..UsageRecord::default()
        })
        .collect()
}

fn insert_batches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engines = vec![(
        "sqlite",
        format!("sqlite://{}/bench.db", dir.path().display()),
    )];
    if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        engines.push(("postgres", url));
    }
    let mut group = c.benchmark_group("usage_writer");
    for (engine, url) in engines {
        let store = runtime.block_on(store(&url));
        let key = runtime.block_on(owner(&store));
        for size in [64, 500] {
            let batch = records(&key, size);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(format!("{engine}/batch_of_{size}"), |b| {
                b.iter_batched(
                    || batch.clone(),
                    |batch| {
                        runtime
                            .block_on(store.insert_usage(&batch))
                            .expect("insert")
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, insert_batches);
criterion_main!(benches);
