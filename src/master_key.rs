//! The bootstrap credential (and the token signing secret, made the same way). When the config names no master key, one is made on first start,
//! kept in `<data_dir>/master_key` (mode 0600) and printed once, so `cargo run` works with no
//! environment variables and the key survives restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::{Config, Secret};

pub enum MasterKeySource {
    Configured,
    Stored(PathBuf),
    Generated(PathBuf, Secret),
}

pub fn ensure(config: &mut Config) -> anyhow::Result<MasterKeySource> {
    if !config.auth.master_keys.is_empty() {
        return Ok(MasterKeySource::Configured);
    }
    if !config.auth.generate_master_key {
        bail!(
            "no master key configured: set auth.master_keys (or auth.generate_master_key = true)"
        );
    }
    let path = config.server.data_dir.join("master_key");
    let (key, generated) = stored_or_new(&path, 8, generate)?;
    config.auth.master_keys.push(key.clone());
    Ok(if generated {
        MasterKeySource::Generated(path, key)
    } else {
        MasterKeySource::Stored(path)
    })
}

/// The HS256 secret for access tokens when the config names none: made once, kept in
/// `<data_dir>/jwt_secret` (0600), so tokens survive a restart. Several replicas must share one
/// secret: set `auth.jwt_secret` for them.
pub fn ensure_jwt_secret(config: &mut Config) -> anyhow::Result<()> {
    if config.identity.jwt.secret.is_some()
        || config.identity.jwt.algorithm != crate::config::JwtAlgorithm::Hs256
    {
        return Ok(());
    }
    let path = config.server.data_dir.join("jwt_secret");
    let (secret, generated) = stored_or_new(&path, 32, || {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })?;
    if generated {
        tracing::info!("generated a JWT signing secret in {}", path.display());
    }
    config.identity.jwt.secret = Some(secret);
    Ok(())
}

/// The secret kept at `path`, or a new one from `make`, written there (0600). True when new.
fn stored_or_new(
    path: &Path,
    min_len: usize,
    make: impl FnOnce() -> String,
) -> anyhow::Result<(Secret, bool)> {
    if path.exists() {
        let value = fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string();
        if value.len() < min_len {
            bail!(
                "{} holds no usable secret; delete it to make a new one",
                path.display()
            );
        }
        return Ok((Secret::new(value), false));
    }
    let value = make();
    write_private(path, &value)?;
    Ok((Secret::new(value), true))
}

fn generate() -> String {
    let bytes: [u8; 24] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sk-gw-{hex}")
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        );
        let mut first = Config::parse(&text, "t", &|_| None).unwrap();
        let MasterKeySource::Generated(path, key) = ensure(&mut first).unwrap() else {
            panic!("expected a generated key")
        };
        assert!(key.expose().starts_with("sk-gw-"));
        let mut second = Config::parse(&text, "t", &|_| None).unwrap();
        assert!(matches!(ensure(&mut second).unwrap(), MasterKeySource::Stored(p) if p == path));
        assert_eq!(second.auth.master_keys, vec![key]);
    }
}
