//! Who the client is behind trusted reverse proxies: `server.trusted_proxies` lists the proxies'
//! addresses (CIDRs); a request from one of them names its client in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Each proxy appends the address it saw, so the list is read from the right
//! and the first address that is not a trusted proxy is the client: whatever a client writes
//! itself is further left and never believed. A request from anyone else is its TCP peer.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

tokio::task_local! {
    /// The TCP peer of the connection a request came on, for code that has the request's
    /// headers but not its extensions (credential lookups on /v1, whose requests carry no
    /// address extension: it would cost every request an allocation).
    static CONNECTION_PEER: IpAddr;
}

/// Runs `future` (a connection, or one of its HTTP/2 streams) with `peer` as its peer.
pub fn with_peer<F: std::future::Future>(
    peer: IpAddr,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<IpAddr, F> {
    CONNECTION_PEER.scope(peer, future)
}

/// The peer of the connection being served, if the caller runs inside one.
pub fn connection_peer() -> Option<IpAddr> {
    CONNECTION_PEER.try_with(|peer| *peer).ok()
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.nets.iter().any(|net| net.contains(&address))
    }

    /// The client of the request with `headers` on the connection being served (None outside
    /// one: an in-process call).
    pub fn current_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        connection_peer().map(|peer| self.client(peer, headers))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match forwarded_for(headers) {
            Some(hops) => hops,
            None => x_forwarded_for(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            // Garbage a proxy passed on ends the walk: the last address we could trust saw it.
            let Some(address) = hop else { break };
            client = canonical(*address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`: compare it as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Every `X-Forwarded-For` header's comma-separated entries, in order (None: unparsable).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect()
}

/// The `for=` of every `Forwarded` element, in order; None when there is no such header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all(http::header::FORWARDED).iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            });
            // An element without `for=` (only `proto=`, say) names no hop.
            if let Some(node) = node {
                hops.push(parse_node(node));
            }
        }
    }
    Some(hops)
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`; anything else (`unknown`, an
/// obfuscated name) is None.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(trusted.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1/32"]);
        // The client forged "6.6.6.6"; the balancer appended what it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")]);
        assert_eq!(trusted.client(ip("10.1.2.3"), &h), ip("198.51.100.7"));
        // Several headers are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        assert_eq!(trusted.client(ip("10.1.2.3"), &h), ip("198.51.100.8"));
    }

    #[test]
    fn all_trusted_hops_give_the_left_most_and_no_header_the_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.0.0.7, 10.0.0.8")]);
        assert_eq!(trusted.client(ip("10.0.0.9"), &h), ip("10.0.0.7"));
        assert_eq!(
            trusted.client(ip("10.0.0.9"), &HeaderMap::new()),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip, 10.0.0.5")]);
        assert_eq!(trusted.client(ip("10.0.0.9"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ff::/48"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2:80"#,
            ),
            ("x-forwarded-for", "5.5.5.5"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "For=198.51.100.3;proto=http")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("198.51.100.3"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_nets() {
        let trusted = proxies(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), &h),
            ip("198.51.100.4")
        );
    }
}
