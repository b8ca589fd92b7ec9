//! `mock-provider`: the OpenAI-compatible fake upstream, for demos and benches.
//!
//! ```text
//! cargo run --release --bin mock-provider -- --listen 127.0.0.1:9090 --chunks 20 --chunk-delay-ms 10
//! ```

use std::net::SocketAddr;

use clap::Parser;
use gateway::mock::{self, MockOptions, MockStats};

#[derive(Parser)]
#[command(name = "mock-provider", about = "An OpenAI-compatible fake upstream")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 3)]
    chunks: usize,
    /// Delay between streamed chunks.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Delay before the response headers.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    gateway::telemetry::init(gateway::telemetry::LogFormat::Text);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, "mock provider listening");
        let defaults = MockOptions {
            chunks: cli.chunks,
            chunk_delay_ms: cli.chunk_delay_ms,
            latency_ms: cli.latency_ms,
            ..MockOptions::default()
        };
        let stats = std::sync::Arc::new(MockStats::default());
        mock::serve(listener, stats, defaults, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}
