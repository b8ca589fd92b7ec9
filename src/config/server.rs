//! `[server]`: where the gateway listens, how big a request may be, how long a drain lasts and
//! where its files live.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 25 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    listen: String,
    max_request_bytes: u64,
    drain_timeout_secs: u64,
    data_dir: String,
    trusted_proxies: Vec<String>,
    body_read_timeout_secs: u64,
    max_inflight_body_bytes: u64,
    max_connections: usize,
    max_connections_per_address: usize,
    app_request_timeout_secs: u64,
    http2_keep_alive_secs: u64,
    tls: Option<RawTls>,
}

/// `[server.tls]`: present means the port speaks only TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert_file: String,
    key_file: String,
    #[serde(default = "default_reload_check_ms")]
    reload_check_ms: u64,
    #[serde(default = "default_handshake_timeout_secs")]
    handshake_timeout_secs: u64,
}

fn default_reload_check_ms() -> u64 {
    10_000
}

fn default_handshake_timeout_secs() -> u64 {
    10
}

/// TLS termination: the PEM files (the chain, leaf first, and its private key), how often they
/// are checked for a change, and how long a handshake may take.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_check: Duration,
    pub handshake_timeout: Duration,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_timeout_secs: 30,
            data_dir: "data".into(),
            trusted_proxies: Vec::new(),
            body_read_timeout_secs: 60,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_address: 512,
            app_request_timeout_secs: 300,
            http2_keep_alive_secs: 30,
            tls: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_request_bytes: u64,
    pub drain_timeout: Duration,
    pub data_dir: PathBuf,
    /// Reverse proxies (addresses or CIDRs) whose forwarding headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request body may take to arrive (a trickled body would hold a task).
    pub body_read_timeout: Duration,
    /// Request bodies all requests together may hold in memory; beyond, 503.
    pub max_inflight_body_bytes: u64,
    /// Open client connections at most, and from one address (a trusted proxy is not capped
    /// per address); a connection beyond is closed at once.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// How long an app endpoint (not /v1) may take to answer (its streamed body aside).
    pub app_request_timeout: Duration,
    /// HTTP/2: a ping after this much silence, and the connection closed if it goes unanswered
    /// as long again.
    pub http2_keep_alive: Duration,
    pub tls: Option<TlsConfig>,
}

pub(super) fn server(raw: RawServer, problems: &mut Vec<String>) -> ServerConfig {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            problems.push(format!(
                "server.listen: \"{}\" is not an address (hint: \"127.0.0.1:8080\" or \"0.0.0.0:8080\")",
                raw.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    if raw.max_request_bytes == 0 {
        problems.push("server.max_request_bytes: must be greater than 0".into());
    }

    let mut trusted_proxies = Vec::new();
    for (i, entry) in raw.trusted_proxies.iter().enumerate() {
        let parsed = entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => problems.push(format!(
                "server.trusted_proxies[{i}]: \"{entry}\" is not an address or CIDR (hint: \"10.0.0.0/8\")"
            )),
        }
    }
    for (field, value) in [
        ("body_read_timeout_secs", raw.body_read_timeout_secs),
        ("max_inflight_body_bytes", raw.max_inflight_body_bytes),
        ("max_connections", raw.max_connections as u64),
        (
            "max_connections_per_address",
            raw.max_connections_per_address as u64,
        ),
        ("app_request_timeout_secs", raw.app_request_timeout_secs),
        ("http2_keep_alive_secs", raw.http2_keep_alive_secs),
    ] {
        if value == 0 {
            problems.push(format!("server.{field}: must be greater than 0"));
        }
    }
    if raw.max_inflight_body_bytes < raw.max_request_bytes {
        problems.push(
            "server.max_inflight_body_bytes: must be at least server.max_request_bytes".into(),
        );
    }
    let tls = raw.tls.map(|tls| {
        for (field, value) in [
            ("reload_check_ms", tls.reload_check_ms),
            ("handshake_timeout_secs", tls.handshake_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("server.tls.{field}: must be greater than 0"));
            }
        }
        TlsConfig {
            cert_file: PathBuf::from(tls.cert_file),
            key_file: PathBuf::from(tls.key_file),
            reload_check: Duration::from_millis(tls.reload_check_ms),
            handshake_timeout: Duration::from_secs(tls.handshake_timeout_secs),
        }
    });
    ServerConfig {
        tls,
        trusted_proxies,
        body_read_timeout: Duration::from_secs(raw.body_read_timeout_secs),
        max_inflight_body_bytes: raw.max_inflight_body_bytes,
        max_connections: raw.max_connections,
        max_connections_per_address: raw.max_connections_per_address,
        app_request_timeout: Duration::from_secs(raw.app_request_timeout_secs),
        http2_keep_alive: Duration::from_secs(raw.http2_keep_alive_secs),
        listen,
        max_request_bytes: raw.max_request_bytes,
        drain_timeout: Duration::from_secs(raw.drain_timeout_secs),
        data_dir: PathBuf::from(raw.data_dir),
    }
}
