//! The `gateway` binary: `check-config`, `serve`, `migrate` and `user create`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_shipped_config_is_valid() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let (ok, out) = check(&shipped);
    assert!(ok, "{out}");
    assert!(out.contains("provider openai will be skipped"), "{out}");
}

#[test]
fn a_bad_reference_is_named_by_its_key_path() {
    let (ok, out) = check(
        r#"
[[providers]]
name = "openai"
base_url = "https://api.openai.com/v1"

[[models]]
name = "a"
targets = [{ provider = "openai" }]

[[models]]
name = "b"
targets = [{ provider = "openai" }]

[[models]]
name = "c"
targets = [{ provider = "opnai" }]
"#,
    );
    assert!(!ok);
    assert!(
        out.contains(r#"models[2].targets[0].provider: no provider named "opnai" (known: openai)"#),
        "{out}"
    );
}

#[test]
fn unknown_keys_and_bad_toml_are_rejected() {
    let (ok, out) = check("[[providers]]\nname = \"x\"\nbase_url = \"http://x\"\napikey = \"k\"\n");
    assert!(!ok);
    assert!(
        out.contains("providers[0]") && out.contains("apikey"),
        "{out}"
    );

    let (ok, out) = check("[server\n");
    assert!(!ok);
    assert!(out.contains("TOML syntax"), "{out}");
}

/// `gateway serve` as a user runs it: no master key configured, so one is generated, stored and
/// printed once; JSON logs on stderr; SIGTERM drains and exits cleanly.
#[test]
fn serve_generates_a_key_logs_json_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read};

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndrain_timeout_secs = 5\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut listening = None;
    // Kept open until the end, so the gateway's later log lines have somewhere to go.
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if event["message"] == "gateway listening" {
            listening = Some(event);
            break;
        }
    }
    let listening = listening.expect("the gateway logs where it listens");
    assert!(listening["listen"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    let key = std::fs::read_to_string(data.join("master_key")).unwrap();
    #[cfg(unix)]
    for secret in ["master_key", "jwt_secret"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    // The embedded default: a SQLite file under the data directory, migrated at start.
    assert!(data.join("gateway.db").exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.contains(key.trim()),
        "the generated key is printed once: {stdout}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown signal received")),
        "{rest:?}"
    );
}

/// Runs the binary on a config naming `db_url`, with `stdin` fed in; (success, stdout+stderr).
fn gateway_cmd(config: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("GATEWAY_USER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn config_on(dir: &std::path::Path, db_url: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[auth]\nmaster_keys = [\"{}\"]\njwt_secret = \"{}\"\n[database]\nurl = \"{db_url}\"\n",
            dir.join("data").display(),
            common::KEY,
            common::JWT_SECRET,
        ),
    )
    .unwrap();
    path
}

/// `gateway migrate status|up|down` on each engine, then `gateway user create --admin`, whose
/// user then signs in to a running gateway and reaches the admin endpoints.
#[tokio::test]
async fn migrate_and_create_the_first_admin() {
    for (engine, url) in common::db::databases().await {
        let dir = tempfile::tempdir().unwrap();
        let url = if engine == "sqlite" {
            format!("sqlite://{}", dir.path().join("gw.db").display())
        } else {
            url
        };
        let config = config_on(dir.path(), &url);

        let (ok, out) = gateway_cmd(&config, &["migrate", "status"], "");
        assert!(ok, "{engine}: {out}");
        assert_eq!(out.matches("pending").count(), 7, "{engine}: {out}");
        let (ok, out) = gateway_cmd(&config, &["migrate", "up"], "");
        assert!(
            ok && out.contains("applied 7 migration(s)"),
            "{engine}: {out}"
        );
        let (_, out) = gateway_cmd(&config, &["migrate", "status"], "");
        assert_eq!(out.matches("applied").count(), 7, "{engine}: {out}");
        let (ok, out) = gateway_cmd(&config, &["migrate", "down"], "");
        assert!(ok && out.contains("reverted 7"), "{engine}: {out}");
        let (_, out) = gateway_cmd(&config, &["migrate", "status"], "");
        assert!(
            out.contains("6  applied") && out.contains("7  pending"),
            "{engine}: {out}"
        );

        // `user create` applies what is pending itself.
        let args = [
            "user",
            "create",
            "--email",
            "Root@Example.com",
            "--admin",
            "--password-stdin",
        ];
        let (ok, out) = gateway_cmd(&config, &args, "first admin password\n");
        assert!(
            ok && out.contains("created admin user root@example.com"),
            "{engine}: {out}"
        );
        let (ok, out) = gateway_cmd(&config, &args, "first admin password\n");
        assert!(!ok && out.contains("already exists"), "{engine}: {out}");
        let (ok, out) = gateway_cmd(&config, &args[..5], "");
        assert!(!ok && out.contains("--password-stdin"), "{engine}: {out}");

        let loaded = gateway::config::Config::load(&config).unwrap();
        let gw = gateway::spawn(loaded).await.unwrap();
        let client = reqwest::Client::new();
        let login: serde_json::Value = client
            .post(format!("{}/api/v1/auth/login", gw.url()))
            .json(&serde_json::json!({"email": "root@example.com", "password": "first admin password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(login["user"]["role"], "admin", "{engine}: {login}");
        let users = client
            .get(format!("{}/api/v1/admin/users", gw.url()))
            .bearer_auth(login["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(users.status(), 200, "{engine}");
        let users: serde_json::Value = users.json().await.unwrap();
        assert_eq!(users["total"], 1, "{engine}: {users}");
        gw.shutdown().await.unwrap();

        // Reverting the identity migration drops tables a better-auth app may share: only
        // with --force.
        let (ok, out) = gateway_cmd(&config, &["migrate", "down", "--steps", "10"], "");
        assert!(!ok && out.contains("--force"), "{engine}: {out}");
        let (_, out) = gateway_cmd(&config, &["migrate", "status"], "");
        assert_eq!(
            out.matches("applied").count(),
            7,
            "{engine}: nothing reverted: {out}"
        );
        let (ok, out) = gateway_cmd(&config, &["migrate", "down", "--steps", "6"], "");
        assert!(ok && out.contains("reverted 2"), "{engine}: {out}");
        let (ok, out) = gateway_cmd(&config, &["migrate", "down", "--force"], "");
        assert!(ok && out.contains("reverted 1"), "{engine}: {out}");
    }
}
