//! Usage metering through the real HTTP surface: every /v1 request leaves one usage record
//! (read back from the gateway's own SQLite file), streams included, with the provider's
//! token counts, the price table's cost and the timings; hang-ups are still recorded; the
//! writer flushes on shutdown and sets records aside when the database refuses them; and
//! `GET /metrics` shows it all.

mod common;

use std::time::Duration;

use common::config::TestConfig;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::Row;

use common::{Harness, KEY};

const PRICES: &str = r#"
[pricing.models."mock-gpt"]
input_per_mtok = 1000.0
output_per_mtok = 2000.0

[pricing.models."text"]
input_per_mtok = 3.0
output_per_mtok = 15.0

[pricing.models."whisper-mock"]
audio_per_minute = 0.006
"#;

struct Metered {
    h: Harness,
    db_url: String,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str) -> Metered {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let extra = format!(
        "{PRICES}\n{}",
        extra.replace("{DIR}", &dir.path().display().to_string())
    );
    let h = common::start_on(
        &db_url,
        &format!("{extra}\n{}", common::TRANSLATED_PROVIDERS),
    )
    .await;
    Metered {
        h,
        db_url,
        _dir: dir,
    }
}

#[derive(Debug)]
struct Record {
    request_id: String,
    user_id: Option<String>,
    api_key_id: Option<String>,
    route: String,
    model: Option<String>,
    provider: Option<String>,
    upstream_model: Option<String>,
    status: i64,
    outcome: String,
    stream: bool,
    prompt_tokens: i64,
    completion_tokens: i64,
    audio_seconds: f64,
    estimated: bool,
    cost_usd: f64,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
}

/// The test's own connection to the gateway's SQLite file.
async fn open(db_url: &str) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(db_url).await.unwrap()
}

impl Metered {
    /// Every usage record, oldest first, once the writer has written what is queued.
    async fn records(&self) -> Vec<Record> {
        self.h.gateway.flush_usage().await;
        read_records(&self.db_url).await
    }

    fn chat(&self, token: &str, body: Value) -> reqwest::RequestBuilder {
        self.h
            .client
            .post(self.h.url("/v1/chat/completions"))
            .bearer_auth(token)
            .json(&body)
    }
}

async fn read_records(db_url: &str) -> Vec<Record> {
    let pool = open(db_url).await;
    let rows = sqlx::query("SELECT * FROM usage_record ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Record {
            request_id: r.get("request_id"),
            user_id: r.get("user_id"),
            api_key_id: r.get("api_key_id"),
            route: r.get("route"),
            model: r.get("model"),
            provider: r.get("provider"),
            upstream_model: r.get("upstream_model"),
            status: r.get::<i32, _>("status").into(),
            outcome: r.get("outcome"),
            stream: r.get("stream"),
            prompt_tokens: r.get("prompt_tokens"),
            completion_tokens: r.get("completion_tokens"),
            audio_seconds: r.get("audio_seconds"),
            estimated: r.get("estimated"),
            cost_usd: r.get("cost_usd"),
            latency_ms: r.get("latency_ms"),
            ttfb_ms: r.get("ttfb_ms"),
        })
        .collect::<Vec<_>>();
    pool.close().await;
    rows
}

/// A registered user's access token and an API key of theirs: (token, key, user id, key id).
async fn user_with_key(h: &Harness, email: &str) -> (String, String, String, String) {
    let r: Value = h
        .client
        .post(h.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["access_token"].as_str().unwrap().to_string();
    let user_id = r["user"]["id"].as_str().unwrap().to_string();
    let key: Value = h
        .client
        .post(h.url("/api/v1/keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "metering"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        token,
        key["key"].as_str().unwrap().to_string(),
        user_id,
        key["id"].as_str().unwrap().to_string(),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[tokio::test]
async fn a_json_answer_is_metered_with_the_providers_counts_and_the_price() {
    let m = start("").await;
    let (_, key, user_id, key_id) = user_with_key(&m.h, "json@example.com").await;
    let response = m
        .chat(
            &key,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    let records = m.records().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.request_id, request_id);
    assert_eq!(r.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(r.api_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(r.route, "chat.completions");
    assert_eq!(r.model.as_deref(), Some("mock-gpt"));
    assert_eq!(r.provider.as_deref(), Some("mock"));
    assert_eq!(r.upstream_model.as_deref(), Some("mock-gpt"));
    assert_eq!(
        (r.status, r.outcome.as_str(), r.stream, r.estimated),
        (200, "complete", false, false)
    );
    assert_eq!(
        r.prompt_tokens,
        answer["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        r.completion_tokens,
        answer["usage"]["completion_tokens"].as_i64().unwrap()
    );
    let expected = (r.prompt_tokens as f64 * 1000.0 + r.completion_tokens as f64 * 2000.0) / 1e6;
    assert!(close(r.cost_usd, expected), "{} vs {expected}", r.cost_usd);
    assert!(r.ttfb_ms.is_some() && r.latency_ms >= r.ttfb_ms.unwrap_or(0));
}

/// The client did not ask for usage: the gateway asks the upstream, meters it, and cuts the
/// usage chunk from the client's stream; asked, the client gets it as the upstream sent it.
#[tokio::test]
async fn streams_are_metered_and_the_usage_chunk_only_reaches_clients_that_asked() {
    let m = start("").await;
    for asked in [false, true] {
        let mut body = json!({"model": "mock-gpt", "stream": true,
            "messages": [{"role": "user", "content": "stream please"}], "mock": {"chunks": 5}});
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let text = m
            .chat(KEY, body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let usage_chunks: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|c| c["usage"].is_object())
            .collect();
        assert_eq!(
            usage_chunks.len(),
            usize::from(asked),
            "asked {asked}: {text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(
            text.matches(r#""content":"tok"#).count(),
            5,
            "every content chunk arrives: {text}"
        );
    }
    let records = m.records().await;
    assert_eq!(records.len(), 2);
    for r in &records {
        assert!(r.stream && !r.estimated && r.outcome == "complete", "{r:?}");
        assert_eq!(
            r.completion_tokens, 5,
            "the mock counts one token per chunk: {r:?}"
        );
        assert!(r.prompt_tokens > 0 && r.cost_usd > 0.0);
        assert_eq!(r.user_id, None, "the master key is no user");
    }
}

#[tokio::test]
async fn translated_streams_take_usage_from_the_providers_own_events() {
    let m = start("").await;
    for model in ["claude-text", "gemini-text"] {
        let body = json!({"model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        let response = m.chat(KEY, body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(!text.contains("\"usage\":{"), "not asked, not sent: {text}");
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let answer: Value = m
            .chat(KEY, body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer["usage"]["prompt_tokens"].as_i64().unwrap() > 0,
            "{answer}"
        );
    }
    let records = m.records().await;
    assert_eq!(records.len(), 4);
    for r in &records {
        assert!(
            !r.estimated && r.prompt_tokens > 0 && r.completion_tokens > 0,
            "{r:?}"
        );
    }
    // The streamed and whole answers of one recorded exchange count the same tokens.
    assert_eq!(
        (records[0].prompt_tokens, records[0].completion_tokens),
        (records[1].prompt_tokens, records[1].completion_tokens)
    );
    assert!(
        records[0].cost_usd > 0.0,
        "claude's `text` upstream model is priced: {:?}",
        records[0]
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_is_still_metered() {
    let m = start("").await;
    let body = json!({"model": "mock-gpt", "stream": true,
        "messages": [{"role": "user", "content": "a long answer"}],
        "mock": {"chunks": 50, "chunk_delay_ms": 50}});
    let response = m.chat(KEY, body).send().await.unwrap();
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while seen.matches("tok").count() < 6 {
        let chunk = stream.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    assert!(
        m.h.wait_streams_cancelled(1).await,
        "the upstream stream is cancelled"
    );
    let records = m.records().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.outcome, "client_disconnected");
    assert!(r.estimated, "{r:?}");
    assert!(
        r.completion_tokens >= 3 && r.completion_tokens < 50,
        "{r:?}"
    );
    assert!(r.prompt_tokens > 0 && r.cost_usd > 0.0, "{r:?}");
}

#[tokio::test]
async fn failures_and_rejections_are_metered_too() {
    let m = start("").await;
    let (_, key, _, _) = user_with_key(&m.h, "fail@example.com").await;
    let upstream_error = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}],
        "mock": {"status": 400}});
    assert_eq!(
        m.chat(&key, upstream_error).send().await.unwrap().status(),
        400
    );
    let unknown = json!({"model": "no-such-model", "messages": []});
    assert_eq!(m.chat(&key, unknown).send().await.unwrap().status(), 404);
    let malformed =
        m.h.client
            .post(m.h.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(malformed.status(), 400);
    // Unauthenticated: counted in metrics, not written (no one to charge).
    assert_eq!(
        m.chat("sk-wrong", json!({})).send().await.unwrap().status(),
        401
    );
    let records = m.records().await;
    let summary: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.status,
                r.outcome.as_str(),
                r.model.as_deref(),
                r.prompt_tokens,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (400, "complete", Some("mock-gpt"), 0),
            (404, "rejected", None, 0),
            (400, "rejected", None, 0),
        ]
    );
}

#[tokio::test]
async fn embeddings_and_transcriptions_are_metered() {
    let m = start(
        r#"
[[models]]
name = "whisper-mock"
targets = [{ provider = "mock", model = "whisper-1" }]
"#,
    )
    .await;
    let emb = json!({"model": "mock-gpt", "input": ["one", "two"]});
    let response =
        m.h.client
            .post(m.h.url("/v1/embeddings"))
            .bearer_auth(KEY)
            .json(&emb)
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-mock")
        .text("response_format", "verbose_json")
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![0u8; 2048]).file_name("a.wav"),
        );
    let response =
        m.h.client
            .post(m.h.url("/v1/audio/transcriptions"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    let records = m.records().await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].route, "embeddings");
    assert!(
        records[0].prompt_tokens > 0 && !records[0].estimated,
        "{:?}",
        records[0]
    );
    let audio = &records[1];
    assert_eq!(audio.route, "audio.transcriptions");
    assert!(!audio.estimated, "{audio:?}");
    assert_eq!(
        audio.audio_seconds, 2.0,
        "the answer's usage.seconds: {audio:?}"
    );
    assert!(close(audio.cost_usd, 0.006 * 2.0 / 60.0), "{audio:?}");
}

#[tokio::test]
async fn shutdown_writes_every_pending_record() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    // A long linger: without the shutdown flush the records would still be queued.
    let h = common::start_config(TestConfig::new().database(&db_url).metering(|m| {
        m.flush_interval = Duration::from_secs(60);
        m.batch_size = 1000;
    }))
    .await;
    let body = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]});
    let answers: Vec<_> = (0..20)
        .map(|_| h.post_json("/v1/chat/completions", &body))
        .collect();
    for answer in futures_util::future::join_all(answers).await {
        assert_eq!(answer.status(), 200);
    }
    h.gateway.shutdown().await.unwrap();
    assert_eq!(read_records(&db_url).await.len(), 20);
}

/// The database refuses the batch: after its retries it goes to the undelivered file (never
/// dropped), and the next start writes it back.
#[tokio::test]
async fn records_the_database_refuses_are_kept_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let spill = dir.path().join("undelivered.jsonl");
    let spill_file = spill.clone();
    let refused = move |m: &mut gateway::config::MeteringConfig| {
        m.max_retries = 2;
        m.retry_backoff = Duration::from_millis(1);
        m.undelivered_file = spill_file;
    };
    let h = common::start_config(
        TestConfig::new()
            .database(&db_url)
            .metering(refused.clone()),
    )
    .await;
    let pool = open(&db_url).await;
    sqlx::query("ALTER TABLE usage_record RENAME TO usage_record_away")
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = h
            .post_json(
                "/v1/chat/completions",
                &json!({"model": "mock-gpt",
            "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    h.gateway.flush_usage().await;
    let kept = std::fs::read_to_string(&spill).expect("undelivered file written");
    assert_eq!(kept.lines().count(), 3, "{kept}");
    let metrics = common::metrics_text(&h.client, &h.gateway.url()).await;
    assert!(
        metrics.contains("gateway_usage_records_undelivered_total"),
        "{metrics}"
    );
    sqlx::query("ALTER TABLE usage_record_away RENAME TO usage_record")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    h.gateway.shutdown().await.unwrap();

    // The next start replays the file into the database and removes it.
    let config = TestConfig::new()
        .mock(&h.mock.base_url())
        .database(&db_url)
        .metering(refused)
        .build()
        .await;
    let again = gateway::spawn(config).await.unwrap();
    // The writer replays the file before it takes any message, so a flush waits for it.
    again.flush_usage().await;
    let replayed = read_records(&db_url).await;
    assert_eq!(replayed.len(), 3);
    assert!(!spill.exists(), "the replayed file is removed");
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_show_requests_tokens_cost_latency_and_upstream_health() {
    let m = start("").await;
    let body = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(m.chat(KEY, body).send().await.unwrap().status(), 200);
    let response = m.h.client.get(m.h.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for needle in [
        r#"gateway_requests_total{route="chat.completions",model="mock-gpt",provider="mock",status="200"}"#,
        r#"gateway_request_duration_seconds_bucket{route="chat.completions",model="mock-gpt",provider="mock",le="0.005"}"#,
        r#"gateway_time_to_first_byte_seconds_count{route="chat.completions",model="mock-gpt",provider="mock"}"#,
        r#"gateway_tokens_total{model="mock-gpt",provider="mock",kind="prompt"}"#,
        r#"gateway_cost_usd_total{model="mock-gpt",provider="mock"}"#,
        r#"gateway_upstream_healthy{model="mock-gpt",provider="mock",upstream_model="mock-gpt"} 1"#,
        "gateway_usage_backlog",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }

    // With a bearer token configured, /metrics wants it.
    let guarded = start("[metrics]\nbearer_token = \"scrape-secret\"").await;
    let url = guarded.h.url("/metrics");
    assert_eq!(
        guarded.h.client.get(&url).send().await.unwrap().status(),
        401
    );
    let ok = guarded
        .h
        .client
        .get(&url)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let off = start("[metrics]\nenabled = false").await;
    assert_eq!(
        off.h
            .client
            .get(off.h.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// An upstream that breaks mid-stream still leaves a record, its output estimated from what
/// was sent; a client whose own `stream_options` say no usage gets none, yet is metered exactly.
#[tokio::test]
async fn upstream_resets_and_client_stream_options_are_metered() {
    let m = start("").await;
    let broken = json!({"model": "mock-gpt", "stream": true,
        "messages": [{"role": "user", "content": "hi"}], "mock": {"chunks": 10, "reset_after": 4, "chunk_delay_ms": 20}});
    let text = m
        .chat(KEY, broken)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"error\""), "a closing error event: {text}");
    let declined = json!({"model": "mock-gpt", "stream": true,
        "stream_options": {"include_usage": false},
        "messages": [{"role": "user", "content": "hi"}], "mock": {"chunks": 3}});
    let text = m
        .chat(KEY, declined)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("\"usage\":{"),
        "the client said no usage: {text}"
    );
    let records = m.records().await;
    assert_eq!(records.len(), 2);
    let (failed, declined) = (&records[0], &records[1]);
    assert_eq!(failed.outcome, "upstream_failed", "{failed:?}");
    assert!(
        failed.estimated && failed.completion_tokens >= 3,
        "{failed:?}"
    );
    assert_eq!(declined.outcome, "complete");
    assert!(
        !declined.estimated && declined.completion_tokens == 3,
        "{declined:?}"
    );
}

impl Metered {
    /// The usage records once there are `n` (a record can be reported after its client left:
    /// bounded wait, polling the writer).
    async fn records_when(&self, n: usize) -> Vec<Record> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records().await;
            if records.len() >= n || tokio::time::Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// `"stream_options": null` (or any value that is no object) cannot switch the usage chunk off.
#[tokio::test]
async fn null_stream_options_still_meter_exactly() {
    let m = start("").await;
    for options in [json!(null), json!("no"), json!([])] {
        let body = json!({"model": "mock-gpt", "stream": true, "stream_options": options,
            "messages": [{"role": "user", "content": "hi"}], "mock": {"chunks": 4}});
        let response = m.chat(KEY, body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("\"usage\":{"),
            "nobody asked for usage: {text}"
        );
    }
    let records = m.records().await;
    assert_eq!(records.len(), 3);
    for r in &records {
        assert!(!r.estimated && r.completion_tokens == 4, "{r:?}");
    }
}

/// What the caller's account spent today, from `GET /api/v1/limits`.
async fn daily_spent(h: &Harness, token: &str) -> f64 {
    let r = h
        .client
        .get(h.url("/api/v1/limits"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let user = v["scopes"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["scope"] == "user"))
        .unwrap_or_else(|| panic!("no user scope in {v}"));
    user["remaining"]["daily_spent_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no daily spend in {v}"))
}

/// Reads a stream until the answer's finish chunk, then hangs up.
async fn read_to_finish_and_hang_up(response: reqwest::Response) {
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"finish_reason\":\"stop\"") {
        let chunk = stream.next().await.expect("more").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
}

/// A client that hangs up right after the last content chunk: the usage that follows is still
/// read and recorded exactly; when none comes, the record is estimated and the budget is
/// charged the reservation's worst case.
#[tokio::test]
async fn a_hang_up_after_the_answer_still_gets_its_usage_or_pays_the_worst_case() {
    let limits =
        "[limits]\nuser_tier = \"metered\"\n[limits.tiers.metered]\ndaily_budget_usd = 100.0\n";
    let m = start(limits).await;
    let (token, key, _, _) = user_with_key(&m.h, "hangup@example.com").await;
    let body = json!({"model": "mock-gpt", "stream": true, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"chunks": 2, "chunk_delay_ms": 200}});
    read_to_finish_and_hang_up(m.chat(&key, body).send().await.unwrap()).await;
    let records = m.records_when(1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.outcome, "client_disconnected", "{r:?}");
    assert!(!r.estimated && r.completion_tokens == 2, "{r:?}");
    let spent_exact = daily_spent(&m.h, &token).await;
    assert!(
        close(spent_exact, r.cost_usd),
        "{spent_exact} vs {}",
        r.cost_usd
    );

    // The usage never comes (the upstream stalls after the finish chunk).
    let body = json!({"model": "mock-gpt", "stream": true, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"chunks": 2, "stall_after": 4}});
    read_to_finish_and_hang_up(m.chat(&key, body).send().await.unwrap()).await;
    let records = m.records_when(2).await;
    let r = &records[1];
    assert_eq!(r.outcome, "client_disconnected", "{r:?}");
    assert!(r.estimated, "{r:?}");
    let spent = daily_spent(&m.h, &token).await;
    // 1,000 output tokens at $2,000 per million: the worst case is at least $2.
    assert!(
        spent - spent_exact >= 2.0,
        "charged {} for an unreported answer",
        spent - spent_exact
    );
}
