//! The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest address
//! in `X-Forwarded-For` that is not itself a trusted proxy. Anyone can write that header, so it
//! is believed only from the proxies named in the configuration.

use std::net::IpAddr;

use anyhow::{Context, bail};

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Addresses or CIDR ranges: `10.0.0.0/8`, `127.0.0.1`, `fd00::/8`.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for e in entries {
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, Some(b.parse::<u8>().context("bad prefix length")?)),
                None => (e.as_str(), None),
            };
            let ip: IpAddr = addr
                .trim()
                .parse()
                .with_context(|| format!("bad trusted proxy '{e}'"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(max);
            if bits > max {
                bail!("bad prefix length in '{e}'");
            }
            out.push((ip, bits));
        }
        Ok(Self(out))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|&(net, bits)| in_range(ip, net, bits))
    }

    /// The client address for a request from `peer` carrying `forwarded_for`.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut last = peer;
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return last;
            };
            if !self.contains(ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        // Untrusted peer: the header is ignored, whatever it says.
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Trusted peer: the nearest untrusted hop wins; a client-written prefix is ignored.
        assert_eq!(
            t.client_ip(ip("10.1.2.3"), Some("6.6.6.6, 198.51.100.7, 10.0.0.5")),
            ip("198.51.100.7")
        );
        assert_eq!(t.client_ip(ip("10.1.2.3"), None), ip("10.1.2.3"));
        assert_eq!(
            t.client_ip(ip("10.1.2.3"), Some("garbage, 10.0.0.1")),
            ip("10.0.0.1")
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["nonsense".into()]).is_err());
        let v6 = TrustedProxies::parse(&["fd00::/8".into()]).unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("2001:db8::1")));
    }
}
