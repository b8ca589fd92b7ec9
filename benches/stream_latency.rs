//! Streaming latency: time to first byte and the gaps between chunks, straight to the mock
//! provider versus through the gateway, in the same run. The mock and the gateway each get their
//! own one-thread runtime, as separate processes would.
//!
//!
//! Three kinds of stream: OpenAI passthrough, and Anthropic and Gemini streams that the gateway
//! translates (the mock plays recorded provider streams; "direct" reads the provider's own
//! format, "gateway" the translated OpenAI chunks). Each is measured one stream at a time and
//! with STREAM_BENCH_CONCURRENCY streams at once.
//!
//! cargo bench --bench stream_latency   (STREAM_BENCH_REQUESTS=N, STREAM_BENCH_CONCURRENCY=N)

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gateway::config::Config;
use gateway::mock::{MockOptions, MockServer};

const CHUNKS: usize = 5;
const CHUNK_DELAY_MS: u64 = 2;

fn runtime_thread<T: Send + 'static>(
    make: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let _ = tx.send(make().await);
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("server started")
}

struct Sample {
    ttfb: Duration,
    gaps: Vec<Duration>,
}

async fn one_stream(client: &reqwest::Client, url: &str, body: &str) -> Sample {
    let start = Instant::now();
    let response = client
        .post(url)
        .header("authorization", "Bearer bench-master-key")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut ttfb = None;
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunk.expect("chunk");
        let now = Instant::now();
        match ttfb {
            None => ttfb = Some(now - start),
            Some(_) => gaps.push(now - last),
        }
        last = now;
    }
    Sample {
        ttfb: ttfb.unwrap_or_default(),
        gaps,
    }
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort_unstable();
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests: usize = std::env::var("STREAM_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let concurrency: usize = std::env::var("STREAM_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
        .max(1);
    let mock_addr = runtime_thread(|| {
        Box::pin(async {
            let options = MockOptions {
                chunks: CHUNKS,
                chunk_delay_ms: CHUNK_DELAY_MS,
                ..MockOptions::default()
            };
            let mock = MockServer::start_with(options, "127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("mock");
            let addr = mock.addr;
            std::mem::forget(mock);
            addr
        })
    });
    let gateway_addr = runtime_thread(move || {
        Box::pin(async move {
            let text = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmaster_keys = [\"bench-master-key\"]\n[database]\nurl = \"sqlite::memory:\"\n\
                 [[providers]]\nname = \"mock\"\nbase_url = \"http://{mock_addr}/v1\"\n\
                 [[providers]]\nname = \"claude\"\nkind = \"anthropic\"\n\
                 base_url = \"http://{mock_addr}/v1\"\n\
                 [[providers]]\nname = \"google\"\nkind = \"gemini\"\n\
                 base_url = \"http://{mock_addr}/v1beta\"\n\
                 [[models]]\nname = \"mock-gpt\"\ntargets = [{{ provider = \"mock\" }}]\n\
                 [[models]]\nname = \"claude-text\"\n\
                 targets = [{{ provider = \"claude\", model = \"text\" }}]\n\
                 [[models]]\nname = \"gemini-text\"\n\
                 targets = [{{ provider = \"google\", model = \"text\" }}]\n"
            );
            let config = Config::parse(&text, "bench", &|_| None).expect("config");
            let gateway = gateway::spawn(config).await.expect("gateway");
            let addr = gateway.addr;
            std::mem::forget(gateway);
            addr
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let openai = r#"{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"Hello!"}]}"#;
        let anthropic_direct = r#"{"model":"text","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}"#;
        let gemini_direct = r#"{"contents":[{"role":"user","parts":[{"text":"Hello!"}]}]}"#;
        let through = format!("http://{gateway_addr}/v1/chat/completions");
        let scenarios = [
            Scenario {
                name: "openai passthrough",
                direct_url: format!("http://{mock_addr}/v1/chat/completions"),
                direct_body: openai.to_string(),
                through_body: openai.to_string(),
            },
            Scenario {
                name: "anthropic translated",
                direct_url: format!("http://{mock_addr}/v1/messages"),
                direct_body: anthropic_direct.to_string(),
                through_body: openai.replace("mock-gpt", "claude-text"),
            },
            Scenario {
                name: "gemini translated",
                direct_url: format!(
                    "http://{mock_addr}/v1beta/models/text:streamGenerateContent?alt=sse"
                ),
                direct_body: gemini_direct.to_string(),
                through_body: openai.replace("mock-gpt", "gemini-text"),
            },
        ];
        println!(
            "{requests} streams each way per row, {CHUNK_DELAY_MS} ms between upstream chunks; \
             concurrency 1 and {concurrency}"
        );
        println!(
            "{:<34}{:>11}{:>11}{:>11}{:>11}{:>11}",
            "", "direct p50", "gw p50", "added p50", "added p99", "gap +p50"
        );
        for scenario in &scenarios {
            for level in [1, concurrency] {
                // Warm-up: connections, caches.
                compare(&client, scenario, &through, 50.min(requests), level).await;
                let mut result = compare(&client, scenario, &through, requests, level).await;
                let d50 = percentile(&mut result.direct_ttfb, 0.5);
                let g50 = percentile(&mut result.gateway_ttfb, 0.5);
                let d99 = percentile(&mut result.direct_ttfb, 0.99);
                let g99 = percentile(&mut result.gateway_ttfb, 0.99);
                let gap = micros(percentile(&mut result.gateway_gaps, 0.5))
                    - micros(percentile(&mut result.direct_gaps, 0.5));
                println!(
                    "{:<34}{:>9.0}us{:>9.0}us{:>9.0}us{:>9.0}us{:>9.0}us",
                    format!("{} (c={level})", scenario.name),
                    micros(d50),
                    micros(g50),
                    micros(g50) - micros(d50),
                    micros(g99) - micros(d99),
                    gap
                );
            }
        }
    });
}

struct Scenario {
    name: &'static str,
    direct_url: String,
    direct_body: String,
    through_body: String,
}

#[derive(Default)]
struct Comparison {
    direct_ttfb: Vec<Duration>,
    gateway_ttfb: Vec<Duration>,
    direct_gaps: Vec<Duration>,
    gateway_gaps: Vec<Duration>,
}

/// `requests` streams each way, `concurrency` at a time; each worker alternates direct and
/// through the gateway so both see the same machine conditions.
async fn compare(
    client: &reqwest::Client,
    scenario: &Scenario,
    through: &str,
    requests: usize,
    concurrency: usize,
) -> Comparison {
    let per_worker = requests.div_ceil(concurrency);
    let workers = (0..concurrency).map(|_| async move {
        let mut part = Comparison::default();
        for _ in 0..per_worker {
            let d = one_stream(client, &scenario.direct_url, &scenario.direct_body).await;
            let g = one_stream(client, through, &scenario.through_body).await;
            part.direct_ttfb.push(d.ttfb);
            part.gateway_ttfb.push(g.ttfb);
            part.direct_gaps.extend(d.gaps);
            part.gateway_gaps.extend(g.gaps);
        }
        part
    });
    let mut all = Comparison::default();
    for part in futures_util::future::join_all(workers).await {
        all.direct_ttfb.extend(part.direct_ttfb);
        all.gateway_ttfb.extend(part.gateway_ttfb);
        all.direct_gaps.extend(part.direct_gaps);
        all.gateway_gaps.extend(part.gateway_gaps);
    }
    all
}
