//! The official OpenAI SDKs (Python and Node) against the gateway, unchanged. CI installs them
//! (see .ci/run) and names them in `SDK_PYTHON` / `SDK_NODE_PATH`; elsewhere these tests say
//! they skipped.

mod common;

use std::process::Command;

use common::*;

async fn run_script(program: &str, script: &str, env: Option<(&str, String)>) {
    let h = start_with(TRANSLATED_PROVIDERS).await;
    let base_url = format!("{}/v1", h.gateway.url());
    let mut command = tokio::process::Command::new(program);
    command.arg(script).arg(&base_url).arg(KEY);
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    let output = command.output().await.expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[tokio::test]
async fn official_python_sdk() {
    let python = std::env::var("SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdk = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sdk {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide the Python SDK (SDK_PYTHON)"
        );
        println!("skipped: no `openai` Python package for {python} (set SDK_PYTHON)");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_python.py");
    run_script(&python, script, None).await;
}

#[tokio::test]
async fn official_node_sdk() {
    let Ok(node_path) = std::env::var("SDK_NODE_PATH") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide the Node SDK (SDK_NODE_PATH)"
        );
        println!("skipped: SDK_NODE_PATH does not name a node_modules with `openai`");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_node.mjs");
    run_script("node", script, Some(("NODE_PATH", node_path))).await;
}
