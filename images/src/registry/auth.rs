//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens
//! from the token server they name, and a token cache keyed by host and
//! scope that all clones of a client share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use super::credentials::Credentials;
use super::error::RegistryError;

/// The lifetime of a token whose response gives no `expires_in`; the token
/// spec of docker's distribution project sets it to 60 s.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// How long before its expiry a cached token is no longer used, so that a
/// request never starts with a token about to run out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses one `WWW-Authenticate` header value such as
    /// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`.
    /// Returns `None` for other schemes and for a bearer challenge without
    /// realm.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = match header.split_once(char::is_whitespace) {
            Some((scheme, rest)) => (scheme, rest),
            None => (header, ""),
        };
        let params = parse_params(rest);
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Self::Basic {
                realm: param("realm"),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer {
                realm: param("realm")?,
                service: param("service"),
                scope: param("scope"),
            })
        } else {
            None
        }
    }

    /// Picks the challenge to satisfy from all `WWW-Authenticate` values of
    /// a response: bearer before basic.
    pub fn choose<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut basic = None;
        for header in headers {
            match Self::parse(header) {
                Some(bearer @ Self::Bearer { .. }) => return Some(bearer),
                Some(other) => basic = Some(other),
                None => {}
            }
        }
        basic
    }
}

/// Splits `key=value, key="quoted \"value\""` into pairs; the quoted form
/// may contain commas and backslash escapes.
fn parse_params(input: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return params;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            // A bare token68 value has no key; it carries nothing a
            // registry challenge needs.
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key, value));
    }
}

/// Returns the scope of a token request for one repository: `repository:NAME:pull`
/// or `repository:NAME:pull,push`.
pub fn repository_scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

/// The authorisation scheme that one host asked for.
#[derive(Debug, Clone)]
pub(crate) enum HostAuth {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

/// Tokens per (host, scopes) and the challenge kind per host; shared by
/// clones of a client.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenCache {
    inner: Arc<Mutex<CacheInner>>,
}

#[derive(Debug, Default)]
struct CacheInner {
    tokens: HashMap<(String, String), CachedToken>,
    hosts: HashMap<String, HostAuth>,
}

impl TokenCache {
    pub(crate) fn token(&self, host: &str, scopes: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        let cached = inner.tokens.get(&(host.to_string(), scopes.to_string()))?;
        (Instant::now() < cached.expires).then(|| cached.token.clone())
    }

    pub(crate) fn put_token(&self, host: &str, scopes: &str, token: String, lifetime: Duration) {
        let usable = lifetime.saturating_sub(EXPIRY_MARGIN.min(lifetime / 2));
        let mut inner = self.inner.lock().unwrap();
        inner.tokens.insert(
            (host.to_string(), scopes.to_string()),
            CachedToken {
                token,
                expires: Instant::now() + usable,
            },
        );
    }

    pub(crate) fn forget_token(&self, host: &str, scopes: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.tokens.remove(&(host.to_string(), scopes.to_string()));
    }

    pub(crate) fn host_auth(&self, host: &str) -> Option<HostAuth> {
        self.inner.lock().unwrap().hosts.get(host).cloned()
    }

    pub(crate) fn set_host_auth(&self, host: &str, auth: HostAuth) {
        self.inner
            .lock()
            .unwrap()
            .hosts
            .insert(host.to_string(), auth);
    }

    /// Drops all tokens of `host`, after its credentials changed.
    pub(crate) fn forget_host(&self, host: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .tokens
            .retain(|(cached_host, _), _| cached_host != host);
    }
}

/// Returns the `Authorization` value for basic auth.
pub(crate) fn basic_header(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A token server's response. Docker's token spec names the field `token`
/// and OAuth2 servers name it `access_token`.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Asks the token server `realm` for a token for `scopes`, with basic auth
/// when `credentials` are given and anonymously otherwise. Returns the
/// token and its lifetime.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<(String, Duration), RegistryError> {
    let token_error = |reason: String| RegistryError::Token {
        registry: registry.to_string(),
        realm: realm.to_string(),
        reason,
    };
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| token_error(format!("invalid realm URL: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    let mut request = http.get(url);
    if let Some(credentials) = credentials {
        request = request.header(reqwest::header::AUTHORIZATION, basic_header(credentials));
    }
    let response = request
        .send()
        .await
        .map_err(|e| token_error(format!("request failed: {e}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            repository: scopes.join(" "),
        });
    }
    if !status.is_success() {
        return Err(token_error(format!("HTTP {status}")));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| token_error(format!("reading the response failed: {e}")))?;
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| token_error(format!("invalid JSON response: {e}")))?;
    let token = parsed
        .token
        .filter(|token| !token.is_empty())
        .or(parsed.access_token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| token_error("the response has neither token nor access_token".into()))?;
    let lifetime = parsed
        .expires_in
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_bearer_full() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/debian:pull".into()),
            })
        );
    }

    #[test]
    fn challenge_scope_with_commas() {
        let header = r#"Bearer realm="http://127.0.0.1:9/token", scope="repository:a/b:pull,push""#;
        let Some(Challenge::Bearer { scope, service, .. }) = Challenge::parse(header) else {
            panic!("not a bearer challenge");
        };
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(service, None);
    }

    #[test]
    fn challenge_unquoted_and_escaped() {
        let header = r#"bearer realm=http://x/token,service="a \"quoted\" name""#;
        let Some(Challenge::Bearer { realm, service, .. }) = Challenge::parse(header) else {
            panic!("not a bearer challenge");
        };
        assert_eq!(realm, "http://x/token");
        assert_eq!(service.as_deref(), Some("a \"quoted\" name"));
    }

    #[test]
    fn challenge_basic() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="hull-test""#),
            Some(Challenge::Basic {
                realm: Some("hull-test".into())
            })
        );
        assert_eq!(
            Challenge::parse("Basic"),
            Some(Challenge::Basic { realm: None })
        );
    }

    #[test]
    fn challenge_rejects_unknown() {
        assert_eq!(Challenge::parse(r#"Digest realm="x""#), None);
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
    }

    #[test]
    fn challenge_choose_prefers_bearer() {
        let chosen = Challenge::choose([r#"Basic realm="r""#, r#"Bearer realm="https://t/""#]);
        assert!(matches!(chosen, Some(Challenge::Bearer { .. })));
    }

    #[test]
    fn token_cache_expiry() {
        let cache = TokenCache::default();
        cache.put_token("h", "s", "t".into(), Duration::from_secs(300));
        assert_eq!(cache.token("h", "s").as_deref(), Some("t"));
        assert_eq!(cache.token("h", "other"), None);
        cache.put_token("h", "s", "t".into(), Duration::ZERO);
        assert_eq!(cache.token("h", "s"), None);
    }

    #[test]
    fn token_cache_shared_by_clones() {
        let cache = TokenCache::default();
        let clone = cache.clone();
        clone.put_token("h", "s", "t".into(), Duration::from_secs(300));
        assert_eq!(cache.token("h", "s").as_deref(), Some("t"));
        cache.forget_host("h");
        assert_eq!(clone.token("h", "s"), None);
    }
}
