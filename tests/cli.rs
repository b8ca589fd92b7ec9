//! The `gateway` binary's `check-config`.

use std::process::Command;

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
