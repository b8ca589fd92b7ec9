//! Streaming latency: time to first byte and the gaps between chunks, straight to the mock
//! provider versus through the gateway, in the same run. The mock and the gateway each get their
//! own one-thread runtime, as separate processes would.
//!
//! cargo bench --bench stream_latency            (STREAM_BENCH_REQUESTS=N to change the count)

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
                "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmaster_keys = [\"bench-master-key\"]\n\
                 [[providers]]\nname = \"mock\"\nbase_url = \"http://{mock_addr}/v1\"\n\
                 [[models]]\nname = \"mock-gpt\"\ntargets = [{{ provider = \"mock\" }}]\n"
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
        let body =
            r#"{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"Hello!"}]}"#;
        let direct = format!("http://{mock_addr}/v1/chat/completions");
        let through = format!("http://{gateway_addr}/v1/chat/completions");
        for _ in 0..50 {
            one_stream(&client, &direct, body).await;
            one_stream(&client, &through, body).await;
        }
        let (mut d_ttfb, mut g_ttfb, mut d_gaps, mut g_gaps) = (vec![], vec![], vec![], vec![]);
        // Alternate so both see the same machine conditions.
        for _ in 0..requests {
            let d = one_stream(&client, &direct, body).await;
            let g = one_stream(&client, &through, body).await;
            d_ttfb.push(d.ttfb);
            g_ttfb.push(g.ttfb);
            d_gaps.extend(d.gaps);
            g_gaps.extend(g.gaps);
        }
        println!("streams: {requests} each way, {CHUNKS} chunks, {CHUNK_DELAY_MS} ms apart");
        println!("{:<28}{:>12}{:>12}{:>12}", "", "direct", "gateway", "added");
        for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
            let d = percentile(&mut d_ttfb, p);
            let g = percentile(&mut g_ttfb, p);
            println!(
                "{:<28}{:>10.0}us{:>10.0}us{:>10.0}us",
                format!("time to first byte {name}"),
                micros(d),
                micros(g),
                micros(g) - micros(d)
            );
        }
        for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
            let d = percentile(&mut d_gaps, p);
            let g = percentile(&mut g_gaps, p);
            println!(
                "{:<28}{:>10.0}us{:>10.0}us{:>10.0}us",
                format!("gap between chunks {name}"),
                micros(d),
                micros(g),
                micros(g) - micros(d)
            );
        }
    });
}
