//! Choice between HTTPS and plain HTTP for a registry host.

use std::net::IpAddr;

/// Returns the URL scheme to use for `host` (`host[:port]`, IPv6 in brackets):
/// plain HTTP for loopback hosts (127.0.0.0/8, ::1, localhost) and for
/// hosts listed in `insecure`, HTTPS for all others.
pub fn scheme_for(host: &str, insecure: &[String]) -> &'static str {
    if is_loopback(host) || is_listed(host, insecure) {
        "http"
    } else {
        "https"
    }
}

/// Returns true when `host` (`host[:port]`) names a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let name = host_without_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => addr.is_loopback(),
        Ok(IpAddr::V6(addr)) => addr.is_loopback(),
        Err(_) => false,
    }
}

/// Returns true when `insecure` lists `host` itself, or its host name
/// without port (an entry without port allows every port of that host).
fn is_listed(host: &str, insecure: &[String]) -> bool {
    let name = host_without_port(host);
    insecure.iter().any(|entry| {
        let entry = entry.trim_end_matches('/');
        let entry = entry
            .strip_prefix("http://")
            .or_else(|| entry.strip_prefix("https://"))
            .unwrap_or(entry);
        entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(name)
    })
}

/// Strips the `:port` part, and the brackets of an IPv6 address.
pub(crate) fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // Only one colon: host:port. More colons without brackets are a bare
        // IPv6 address.
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_http() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST:443",
            "[::1]:5000",
            "::1",
        ] {
            assert_eq!(scheme_for(host, &[]), "http", "{host}");
        }
    }

    #[test]
    fn other_hosts_use_https() {
        for host in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "128.0.0.1",
            "[2001:db8::1]:5000",
            "localhost.example.com",
        ] {
            assert_eq!(scheme_for(host, &[]), "https", "{host}");
        }
    }

    #[test]
    fn insecure_list_allows_http() {
        let insecure = vec!["registry.lan:5000".to_string(), "10.0.0.7".to_string()];
        assert_eq!(scheme_for("registry.lan:5000", &insecure), "http");
        assert_eq!(scheme_for("registry.lan:5001", &insecure), "https");
        assert_eq!(scheme_for("registry.lan", &insecure), "https");
        assert_eq!(scheme_for("10.0.0.7:8080", &insecure), "http");
        assert_eq!(scheme_for("10.0.0.8", &insecure), "https");
    }

    #[test]
    fn insecure_entry_with_scheme() {
        let insecure = vec!["http://registry.lan:5000/".to_string()];
        assert_eq!(scheme_for("registry.lan:5000", &insecure), "http");
    }

    #[test]
    fn host_without_port_forms() {
        assert_eq!(host_without_port("example.com:5000"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:5000"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
    }
}
