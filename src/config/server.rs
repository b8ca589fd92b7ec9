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
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_timeout_secs: 30,
            data_dir: "data".into(),
            trusted_proxies: Vec::new(),
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
    ServerConfig {
        trusted_proxies,
        listen,
        max_request_bytes: raw.max_request_bytes,
        drain_timeout: Duration::from_secs(raw.drain_timeout_secs),
        data_dir: PathBuf::from(raw.data_dir),
    }
}
