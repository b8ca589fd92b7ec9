//! Criterion micro-benchmarks of the per-request work on /v1: reading what routing needs from
//! the body, renaming the model, resolving the route, checking the key, the request id, and,
//! for Anthropic/Gemini targets only, translating the request and each stream event.
//!
//! cargo bench --bench hot_path

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use gateway::config::{Config, Secret};
use gateway::identity::accounts::{ClientInfo, Registration};
use gateway::identity::api_keys::KeyRequest;
use gateway::identity::Identity;
use gateway::plugins::{Role, Route};
use gateway::providers::{anthropic, gemini};
use gateway::proxy::json_probe;
use gateway::request_id::RequestIds;
use gateway::routing::Router;
use gateway::store::Store;
use gateway::translate::openai::ChatRequest;
use gateway::translate::TranslatedStream;

fn chat_body(messages: usize) -> Bytes {
    let message = r#"{"role":"user","content":"Summarise the meeting notes below in three bullet points, keeping names and dates exactly as written."}"#;
    let list = vec![message; messages].join(",");
    Bytes::from(format!(
        r#"{{"model":"gpt-4o-mini","messages":[{list}],"temperature":0.2,"stream":true,"stream_options":{{"include_usage":true}}}}"#
    ))
}

fn config() -> Config {
    let mut text = String::from(
        "[auth]\nmaster_keys = [\"bench-master-key-0001\", \"bench-master-key-0002\"]\n\
         [database]\nurl = \"sqlite::memory:\"\n\
         [[providers]]\nname = \"p\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    );
    for i in 0..50 {
        text.push_str(&format!(
            "[[models]]\nname = \"model-{i}\"\ntargets = [{{ provider = \"p\" }}]\n"
        ));
    }
    text.push_str("[[models]]\nname = \"gpt-4o-mini\"\ntargets = [{ provider = \"p\", model = \"gpt-4o-mini-2024-07-18\" }]\n");
    text.push_str("[[providers]]\nname = \"q\"\nbase_url = \"http://127.0.0.1:9/v1\"\n");
    text.push_str("[[models]]\nname = \"two\"\ntargets = [{ provider = \"p\", weight = 3 }, { provider = \"q\" }]\n");
    Config::parse(&text, "bench", &|_| None).expect("bench config")
}

fn body_handling(c: &mut Criterion) {
    let mut group = c.benchmark_group("body");
    for messages in [1, 20] {
        let body = chat_body(messages);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("probe/{}B", body.len()), |b| {
            b.iter(|| json_probe::probe(black_box(&body), Route::ChatCompletions))
        });
        let parsed = json_probe::probe(&body, Route::ChatCompletions).expect("valid body");
        group.bench_function(format!("replace_model/{}B", body.len()), |b| {
            let model = bytes::Bytes::from_static(b"\"gpt-4o-mini-2024-07-18\"");
            b.iter(|| {
                json_probe::splice(
                    black_box(&body),
                    vec![(parsed.model_span.clone(), model.clone())],
                )
            })
        });
    }
    group.finish();
}

fn routing_and_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Building clients needs a runtime context.
    let router = runtime.block_on(async { Router::build(&config()).expect("router") });
    c.bench_function("routing/resolve", |b| {
        b.iter(|| router.resolve(black_box("gpt-4o-mini")).is_some())
    });

    let two = router.resolve("two").expect("two deployments").clone();
    c.bench_function("routing/weighted_order_and_admit", |b| {
        b.iter(|| {
            let order = two.attempt_order();
            let first = &two.targets[order[0]];
            let lease = first.state.try_lease();
            black_box(first.state.breaker.admit());
            first.state.breaker.record_success();
            lease.is_some()
        })
    });

    // Resolving each kind of credential once it is cached: what /v1 pays per request. The
    // futures complete without waiting (no I/O once cached), so they are polled once.
    let (identity, api_key, access_token) = runtime.block_on(async {
        let config = config();
        let store = Store::connect(&config.database).await.expect("store");
        store.migrate_up().await.expect("migrations");
        let identity = Identity::new(
            &config,
            store,
            &Secret::new("bench-jwt-secret-0000000000000000000"),
        )
        .expect("identity");
        let registration = Registration {
            email: "bench@example.com".into(),
            password: "bench password".into(),
            username: None,
            name: None,
        };
        let user = identity
            .create_user(registration, Role::User)
            .await
            .expect("user");
        let key = identity
            .create_api_key(
                &user.id,
                KeyRequest {
                    name: "bench".into(),
                    expires_at: None,
                    allowed_models: None,
                    admin: false,
                },
            )
            .await
            .expect("key")
            .key;
        let pair = identity
            .start_session(user, &ClientInfo::default())
            .await
            .expect("session");
        (identity, key, pair.access_token)
    });
    for (name, token) in [
        ("auth/master_key", "bench-master-key-0002".to_string()),
        ("auth/api_key_cached", api_key),
        ("auth/access_token_cached", access_token),
    ] {
        let mut headers = http::HeaderMap::new();
        let value = format!("Bearer {token}").parse().expect("header");
        headers.insert(http::header::AUTHORIZATION, value);
        // The first call fills the cache.
        runtime
            .block_on(identity.authenticate(&headers))
            .expect("authenticates");
        c.bench_function(name, |b| {
            b.iter(|| {
                let resolved = identity.authenticate(black_box(&headers)).now_or_never();
                assert!(matches!(resolved, Some(Ok(_))));
            })
        });
    }

    let ids = RequestIds::default();
    c.bench_function("request_id/generate", |b| {
        b.iter(|| ids.ensure(&mut http::HeaderMap::new()))
    });
}

fn translation(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate");
    for messages in [1, 20] {
        let body = chat_body(messages);
        group.bench_function(format!("anthropic_request/{}B", body.len()), |b| {
            b.iter(|| {
                let chat = ChatRequest::parse(black_box(&body)).expect("chat");
                anthropic::request_body(&chat, "claude-sonnet-4-5", 4096).expect("body")
            })
        });
        group.bench_function(format!("gemini_request/{}B", body.len()), |b| {
            b.iter(|| {
                let chat = ChatRequest::parse(black_box(&body)).expect("chat");
                gemini::request_body(&chat).expect("body")
            })
        });
    }
    let chat = ChatRequest::parse(&chat_body(1)).expect("chat");
    let mut stream = TranslatedStream::new(anthropic::stream_translator(&chat, "claude"));
    let start = br#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":9,"output_tokens":1}}}

"#;
    stream.push(start).expect("start");
    let delta = br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the quick brown fox"}}

"#;
    group.bench_function("anthropic_text_event", |b| {
        b.iter(|| stream.push(black_box(delta)).expect("event"))
    });
    let mut stream = TranslatedStream::new(gemini::stream_translator(&chat, "gemini"));
    let event = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" the quick brown fox\"}],\"role\": \"model\"},\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n";
    group.bench_function("gemini_text_event", |b| {
        b.iter(|| stream.push(black_box(event)).expect("event"))
    });
    group.finish();
}

criterion_group!(benches, body_handling, routing_and_auth, translation);
criterion_main!(benches);
