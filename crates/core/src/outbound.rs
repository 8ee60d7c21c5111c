//! Outbound hosts a function may reach, in Spin's allowed-host form: `scheme://host[:port]`
//! (`https://api.example.com`, `https://*.example.com:8443`, `http://127.0.0.1:*`).
//!
//! This module owns the grammar and the matching; the engine's outbound policy
//! (`engine/src/services/outbound.rs`) applies grants to requests and adds what text cannot
//! say: which resolved addresses are never reachable unless a grant names them literally.
//!
//! - scheme: `http`, `https`, or `*` for both;
//! - host: a DNS name, `*.example.com` (any subdomain at any depth, not the apex), an IPv4
//!   literal, an IPv6 literal in brackets (`[::1]`), or `*` (any host);
//! - port: a number or `*` (any); without one, the request's scheme's default port (80 for
//!   `http`, 443 for `https`).
//!
//! No path, query, userinfo or fragment: a grant names a destination, not a resource.
//! Host names compare case-insensitively and without a trailing dot.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One allowed outbound destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboundHost {
    scheme: SchemeGrant,
    host: HostGrant,
    port: PortGrant,
}

/// The schemes a grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemeGrant {
    Http,
    Https,
    /// `*`: both.
    Any,
}

/// The hosts a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostGrant {
    /// `*`: any host (the engine still refuses prohibited addresses).
    Any,
    /// `*.example.com`, holding `example.com`: any name ending in `.example.com`.
    Subdomains(String),
    /// One DNS name, lowercase, without a trailing dot.
    Name(String),
    /// One IP literal.
    Ip(IpAddr),
}

/// The ports a grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortGrant {
    /// None written: the default port of the request's scheme.
    SchemeDefault,
    Port(u16),
    /// `*`: any port.
    Any,
}

/// An outbound host that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound host `{text}` {why}")]
pub struct OutboundHostError {
    text: String,
    why: String,
}

/// The default port of `scheme` (`http` or `https`, any case).
pub fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

impl OutboundHost {
    pub fn scheme(&self) -> SchemeGrant {
        self.scheme
    }

    pub fn host(&self) -> &HostGrant {
        &self.host
    }

    pub fn port(&self) -> PortGrant {
        self.port
    }

    /// Whether this grant allows a request to `scheme://host:port`. `host` is as a URI
    /// holds it: any case, maybe with a trailing dot, an IPv6 literal with or without
    /// its brackets.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let Some(default) = default_port(scheme) else {
            return false;
        };
        let scheme_ok = match self.scheme {
            SchemeGrant::Any => true,
            SchemeGrant::Http => scheme.eq_ignore_ascii_case("http"),
            SchemeGrant::Https => scheme.eq_ignore_ascii_case("https"),
        };
        let port_ok = match self.port {
            PortGrant::Any => true,
            PortGrant::Port(p) => p == port,
            PortGrant::SchemeDefault => port == default,
        };
        scheme_ok && port_ok && self.allows_host(host)
    }

    /// Whether this grant's host covers `host` (any scheme, any port).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        if host.is_empty() {
            return false;
        }
        match (&self.host, host_ip(&host)) {
            (HostGrant::Any, _) => true,
            (HostGrant::Ip(granted), Some(ip)) => granted.to_canonical() == ip.to_canonical(),
            (HostGrant::Ip(_), None) => false,
            // A name grant never covers an IP literal, nor the reverse.
            (HostGrant::Name(_) | HostGrant::Subdomains(_), Some(_)) => false,
            (HostGrant::Name(name), None) => *name == host,
            (HostGrant::Subdomains(domain), None) => host
                .strip_suffix(domain.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }

    /// Whether this grant names `ip` literally (`http://127.0.0.1:*` names 127.0.0.1 and
    /// its IPv4-mapped IPv6 form): what lets a request reach an address that is otherwise
    /// prohibited. A name that resolves to `ip` does not name it.
    pub fn names_address(&self, ip: IpAddr) -> bool {
        matches!(self.host, HostGrant::Ip(granted) if granted.to_canonical() == ip.to_canonical())
    }
}

/// A host lowercased, without a trailing dot or IPv6 brackets.
fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// `host` as an IP literal (IPv6 without brackets), if it is one.
fn host_ip(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok()
}

impl FromStr for OutboundHost {
    type Err = OutboundHostError;

    fn from_str(text: &str) -> Result<OutboundHost, OutboundHostError> {
        let fail = |why: String| OutboundHostError {
            text: text.to_string(),
            why,
        };
        parse(text).map_err(fail)
    }
}

fn parse(text: &str) -> Result<OutboundHost, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("must start with a scheme: `https://`, `http://` or `*://`".into());
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => SchemeGrant::Http,
        "https" => SchemeGrant::Https,
        "*" => SchemeGrant::Any,
        "" => return Err("has no scheme: use `https://`, `http://` or `*://`".into()),
        other => {
            return Err(format!(
                "has unsupported scheme `{other}`: use `http`, `https` or `*`"
            ));
        }
    };
    // Reported in the order a URL holds them, so the first thing wrong is named.
    if let Some(at) = rest.find(['/', '?', '#']) {
        let (what, tail) = (&rest[at..at + 1], &rest[at..]);
        // One trailing slash says nothing more than none.
        if tail != "/" {
            let part = match what {
                "/" => "a path",
                "?" => "a query",
                _ => "a fragment",
            };
            return Err(format!("must not have {part}"));
        }
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err("must not have userinfo (`user@`)".into());
    }
    let (host, port) = split_port(authority)?;
    let host = parse_host(host)?;
    let port = match port {
        None => PortGrant::SchemeDefault,
        Some("*") => PortGrant::Any,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => PortGrant::Port(n),
            _ => {
                return Err(format!(
                    "has invalid port `{p}`: use a number from 1 to 65535, or `*`"
                ));
            }
        },
    };
    Ok(OutboundHost { scheme, host, port })
}

/// Splits `host[:port]`, where an IPv6 host is in brackets.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("has an IPv6 address without its closing `]`".into());
        };
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("has `{after}` after its IPv6 address: expected `:PORT`")),
            },
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, None)),
        Some((_, port)) if port.contains(':') => {
            Err("has an IPv6 address that is not in brackets: write it as `[::1]`".into())
        }
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn parse_host(raw: &str) -> Result<HostGrant, String> {
    if raw.is_empty() {
        return Err("has no host".into());
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(HostGrant::Ip(IpAddr::V6(ip))),
            Err(_) => Err(format!("has invalid IPv6 address `[{inner}]`")),
        };
    }
    if raw == "*" {
        return Ok(HostGrant::Any);
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if let Some(domain) = name.strip_prefix("*.") {
        if domain.contains('*') {
            return Err(wildcard_misplaced());
        }
        check_name(raw, domain)?;
        return Ok(HostGrant::Subdomains(domain.to_string()));
    }
    if name.contains('*') {
        return Err(wildcard_misplaced());
    }
    // Only the dotted-quad form is an address: `127.1` or `2130706433` would resolve to
    // one through the system resolver, so they are refused rather than taken as names.
    if name
        .split('.')
        .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()))
    {
        return match name.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(HostGrant::Ip(IpAddr::V4(ip))),
            Err(_) => Err(format!(
                "has invalid IPv4 address `{raw}`: write four numbers 0-255, as `10.0.0.1`"
            )),
        };
    }
    check_name(raw, &name)?;
    Ok(HostGrant::Name(name))
}

fn wildcard_misplaced() -> String {
    "has a misplaced `*`: it may stand for the whole host (`*`) or its first label (`*.example.com`)".into()
}

/// A DNS name: labels of letters, digits, `-` and `_`, 1 to 63 characters, not starting
/// or ending with `-`; at most 253 characters.
fn check_name(raw: &str, name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("has invalid host name `{raw}`: {why}"));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("it has an empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("use letters, digits, `-`, `_` and `.` only");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with `-`");
        }
    }
    Ok(())
}

impl fmt::Display for OutboundHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            SchemeGrant::Http => "http",
            SchemeGrant::Https => "https",
            SchemeGrant::Any => "*",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostGrant::Any => f.write_str("*")?,
            HostGrant::Subdomains(domain) => write!(f, "*.{domain}")?,
            HostGrant::Name(name) => f.write_str(name)?,
            HostGrant::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostGrant::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            PortGrant::SchemeDefault => Ok(()),
            PortGrant::Port(port) => write!(f, ":{port}"),
            PortGrant::Any => f.write_str(":*"),
        }
    }
}

impl Serialize for OutboundHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OutboundHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OutboundHost, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> OutboundHost {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> String {
        match text.parse::<OutboundHost>() {
            Ok(h) => panic!("`{text}` parsed as {h:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn canonical_text_round_trips() {
        for (text, canonical) in [
            ("https://api.example.com", "https://api.example.com"),
            ("HTTPS://API.Example.COM.", "https://api.example.com"),
            ("https://api.example.com/", "https://api.example.com"),
            ("https://*.example.com:8443", "https://*.example.com:8443"),
            ("http://127.0.0.1:*", "http://127.0.0.1:*"),
            ("*://*:*", "*://*:*"),
            ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
            ("http://[::ffff:127.0.0.1]", "http://[::ffff:127.0.0.1]"),
            ("https://my_host.internal:443", "https://my_host.internal:443"),
        ] {
            let parsed = host(text);
            assert_eq!(parsed.to_string(), canonical, "{text}");
            assert_eq!(host(canonical), parsed, "{text}");
        }
    }

    #[test]
    fn bad_text_is_refused_with_the_reason() {
        for (text, why) in [
            ("example.com", "must start with a scheme"),
            ("://example.com", "has no scheme"),
            ("ftp://example.com", "unsupported scheme `ftp`"),
            ("https://x.com/path", "must not have a path"),
            ("https://x.com?q=1", "must not have a query"),
            ("https://x.com#top", "must not have a fragment"),
            ("https://user:pw@x.com", "must not have userinfo"),
            ("https://", "has no host"),
            ("https://:443", "has no host"),
            ("https://x.com:0", "invalid port `0`"),
            ("https://x.com:65536", "invalid port `65536`"),
            ("https://x.com:+80", "invalid port `+80`"),
            ("https://x.com:", "invalid port ``"),
            ("https://::1", "not in brackets"),
            ("https://[::1", "closing `]`"),
            ("https://[::1]x", "expected `:PORT`"),
            ("https://[nope]", "invalid IPv6 address"),
            ("https://api.*.com", "misplaced `*`"),
            ("https://*.*.com", "misplaced `*`"),
            ("https://x*.com", "misplaced `*`"),
            ("https://127.1", "invalid IPv4 address"),
            ("https://2130706433", "invalid IPv4 address"),
            ("https://300.1.1.1", "invalid IPv4 address"),
            ("https://a..b", "empty label"),
            ("https://-a.com", "starts or ends with `-`"),
            ("https://a b.com", "letters, digits"),
        ] {
            let e = error(text);
            assert!(e.starts_with(&format!("outbound host `{text}` ")), "{e}");
            assert!(e.contains(why), "`{text}`: {e}");
        }
        assert_eq!(
            error("https://x.com/path"),
            "outbound host `https://x.com/path` must not have a path"
        );
    }

    #[test]
    fn serde_is_the_text() {
        let hosts: Vec<OutboundHost> =
            serde_json::from_str(r#"["https://a.example.com", "http://10.0.0.1:*"]"#).unwrap_or_default();
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            serde_json::to_string(&hosts).ok().as_deref(),
            Some(r#"["https://a.example.com","http://10.0.0.1:*"]"#)
        );
        let e = serde_json::from_str::<Vec<OutboundHost>>(r#"["https://x.com/p"]"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("outbound host `https://x.com/p` must not have a path"),
            "{e}"
        );
    }

    #[test]
    fn schemes_and_ports() {
        let https = host("https://example.com");
        assert!(https.allows("https", "example.com", 443));
        assert!(https.allows("HTTPS", "example.com", 443));
        assert!(!https.allows("https", "example.com", 8443));
        assert!(!https.allows("http", "example.com", 80));
        assert!(!https.allows("http", "example.com", 443));
        assert!(!https.allows("ftp", "example.com", 443));

        let both = host("*://example.com");
        assert!(both.allows("http", "example.com", 80));
        assert!(both.allows("https", "example.com", 443));
        assert!(!both.allows("http", "example.com", 443));

        let port = host("http://example.com:8080");
        assert!(port.allows("http", "example.com", 8080));
        assert!(!port.allows("http", "example.com", 80));

        let any_port = host("http://example.com:*");
        assert!(any_port.allows("http", "example.com", 1));
        assert!(any_port.allows("http", "example.com", 65535));
        assert!(!any_port.allows("https", "example.com", 443));
    }

    #[test]
    fn hosts_match_case_insensitively_and_without_a_trailing_dot() {
        let grant = host("https://Api.Example.com");
        assert!(grant.allows("https", "api.example.com", 443));
        assert!(grant.allows("https", "API.EXAMPLE.COM", 443));
        assert!(grant.allows("https", "api.example.com.", 443));
        assert!(!grant.allows("https", "example.com", 443));
        assert!(!grant.allows("https", "x.api.example.com", 443));
        assert!(!grant.allows("https", "api.example.com.evil.net", 443));
        assert!(!grant.allows("https", "", 443));
    }

    #[test]
    fn subdomain_wildcards_cover_any_depth_but_not_the_apex() {
        let grant = host("https://*.example.com");
        assert!(grant.allows("https", "a.example.com", 443));
        assert!(grant.allows("https", "a.b.example.com", 443));
        assert!(grant.allows("https", "A.Example.Com.", 443));
        assert!(!grant.allows("https", "example.com", 443));
        assert!(!grant.allows("https", ".example.com", 443));
        assert!(!grant.allows("https", "badexample.com", 443));
        assert!(!grant.allows("https", "example.com.evil.net", 443));
        assert!(!grant.allows("https", "1.2.3.4", 443));
    }

    #[test]
    fn ip_literals_match_addresses_not_names() {
        let v4 = host("http://127.0.0.1:*");
        assert!(v4.allows("http", "127.0.0.1", 8080));
        assert!(!v4.allows("http", "localhost", 8080));
        assert!(!v4.allows("http", "127.1", 8080));
        assert!(!v4.allows("http", "2130706433", 8080));
        assert!(v4.names_address("127.0.0.1".parse().unwrap()));
        assert!(v4.names_address("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!v4.names_address("127.0.0.2".parse().unwrap()));

        let v6 = host("http://[::1]:*");
        assert!(v6.allows("http", "[::1]", 80));
        assert!(v6.allows("http", "::1", 80));
        assert!(v6.allows("http", "[0:0::1]", 80));
        assert!(v6.names_address("::1".parse().unwrap()));
        assert!(!v6.names_address("127.0.0.1".parse().unwrap()));

        let name = host("http://localhost:*");
        assert!(!name.names_address("127.0.0.1".parse().unwrap()));
        assert!(!name.allows("http", "127.0.0.1", 80));
    }

    #[test]
    fn any_host_covers_everything_but_names_nothing() {
        let grant = host("http://*:*");
        assert!(grant.allows("http", "example.com", 80));
        assert!(grant.allows("http", "127.0.0.1", 8080));
        assert!(grant.allows("http", "[::1]", 8080));
        assert!(!grant.allows("https", "example.com", 443));
        assert!(!grant.names_address("127.0.0.1".parse().unwrap()));
    }
}
