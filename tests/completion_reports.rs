//! Plugins hear exactly once how every request ended, including a client that hangs up while
//! the gateway is still trying targets (the hook usage metering relies on).

mod common;

use std::sync::Arc;
use std::time::Duration;

use gateway::mock::MockServer;
use gateway::plugins::{Completion, Outcome, Plugin, RequestCtx};
use tokio::sync::mpsc;

struct Recorder(mpsc::UnboundedSender<(u16, Outcome, Option<String>)>);

impl Plugin for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn on_complete(&self, ctx: &RequestCtx, completion: &Completion) {
        let model = ctx.model.as_deref().map(str::to_string);
        let _ = self.0.send((
            completion.status.as_u16(),
            completion.outcome.clone(),
            model,
        ));
    }
}

async fn start() -> (
    MockServer,
    gateway::GatewayHandle,
    mpsc::UnboundedReceiver<(u16, Outcome, Option<String>)>,
) {
    let mock = MockServer::start().await.expect("mock starts");
    let config = common::config::TestConfig::new()
        .mock(&mock.base_url())
        .build()
        .await;
    let (tx, rx) = mpsc::unbounded_channel();
    let gateway = gateway::spawn_with(config, vec![Arc::new(Recorder(tx))])
        .await
        .expect("gateway starts");
    (mock, gateway, rx)
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<(u16, Outcome, Option<String>)>,
) -> (u16, Outcome, Option<String>) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a completion is reported")
        .expect("channel open")
}

fn post(
    gateway: &gateway::GatewayHandle,
    model: &str,
    timeout: Duration,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(common::KEY)
        .timeout(timeout)
        .json(&common::chat(model))
}

#[tokio::test]
async fn a_hang_up_while_targets_are_tried_is_reported_once() {
    let (_mock, gateway, mut rx) = start().await;
    // slow-model: every attempt waits 300 ms for headers, three attempts in all; the client
    // gives up during the first.
    let result = post(&gateway, "slow-model", Duration::from_millis(100))
        .send()
        .await;
    assert!(result.is_err(), "the client timed out");
    let (status, outcome, model) = next(&mut rx).await;
    assert_eq!((status, outcome), (499, Outcome::ClientDisconnected));
    assert_eq!(model.as_deref(), Some("slow-model"));
    // Nothing more arrives for that request.
    assert!(
        tokio::time::timeout(Duration::from_millis(1200), rx.recv())
            .await
            .is_err(),
        "reported twice"
    );
}

#[tokio::test]
async fn answered_retried_and_failed_requests_are_each_reported_once() {
    let (_mock, gateway, mut rx) = start().await;
    let ok = post(&gateway, "mock-gpt", Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    assert_eq!(next(&mut rx).await.0, 200);

    // First target answers 503 (retried), then the fallback target answers.
    let fallback = post(&gateway, "fallback-failing", Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 200);
    fallback.bytes().await.unwrap();
    let (status, outcome, _) = next(&mut rx).await;
    assert_eq!((status, outcome), (200, Outcome::Complete));

    let down = post(&gateway, "down-model", Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    let (status, outcome, _) = next(&mut rx).await;
    assert_eq!((status, outcome), (503, Outcome::Rejected));
    assert!(rx.try_recv().is_err(), "one report per request");
}
