//! Sending one request: authorisation from the token cache or the
//! credentials, one retry after a 401 with a fresh challenge, redirects
//! that drop the Authorization header on the way to another host, and the
//! mapping of error statuses to [`RegistryError`].

use futures_util::StreamExt;
use reqwest::header::{HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Request, Response, StatusCode, Url};

use super::auth::{self, Challenge, HostAuth};
use super::credentials::Credentials;
use super::error::{ApiErrors, RegistryError};
use super::{Endpoint, RegistryClient};

/// The maximum number of redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

impl RegistryClient {
    /// Builds a request for `url` with `method`.
    pub(crate) fn request(
        &self,
        endpoint: &Endpoint,
        method: Method,
        url: &str,
    ) -> Result<Request, RegistryError> {
        let url = Url::parse(url).map_err(|e| RegistryError::InvalidResponse {
            registry: endpoint.registry.clone(),
            url: url.to_string(),
            reason: format!("invalid URL: {e}"),
        })?;
        Ok(Request::new(method, url))
    }

    /// Sends `request` with the authorisation that `scopes` need, and sends
    /// it once more after a 401 whose challenge gives new authorisation.
    /// Returns the response whatever its status, except that a second 401
    /// becomes [`RegistryError::Unauthorized`]. Redirects are not followed.
    pub(crate) async fn execute(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        request: Request,
    ) -> Result<Response, RegistryError> {
        let first = self.clone_request(endpoint, &request)?;
        let authorization = self.cached_authorization(endpoint, scopes).await?;
        let response = self.send(endpoint, first, authorization.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }

        let challenges: Vec<String> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_string))
            .collect();
        let Some(challenge) = Challenge::choose(challenges.iter().map(String::as_str)) else {
            return Err(self.unauthorized(endpoint));
        };
        let Some(authorization) = self.answer_challenge(endpoint, scopes, challenge).await? else {
            return Err(self.unauthorized(endpoint));
        };
        tracing::debug!(
            registry = %endpoint.registry,
            repository = %endpoint.repository,
            "retrying the request with new authorisation after HTTP 401"
        );
        let response = self.send(endpoint, request, Some(&authorization)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.inner
                .tokens
                .forget_token(&endpoint.host, &scopes.join(" "));
            return Err(self.unauthorized(endpoint));
        }
        Ok(response)
    }

    /// Sends `request` through [`Self::execute`] and follows redirects. The
    /// Authorization header goes only to the origin (scheme, host and port)
    /// of the first request.
    pub(crate) async fn execute_following(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        request: Request,
    ) -> Result<Response, RegistryError> {
        let template = self.clone_request(endpoint, &request)?;
        let origin = request.url().origin();
        let mut response = self.execute(endpoint, scopes, request).await?;
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| RegistryError::InvalidResponse {
                    registry: endpoint.registry.clone(),
                    url: response.url().to_string(),
                    reason: format!("HTTP {} without a Location header", response.status()),
                })?;
            let next =
                response
                    .url()
                    .join(location)
                    .map_err(|e| RegistryError::InvalidResponse {
                        registry: endpoint.registry.clone(),
                        url: response.url().to_string(),
                        reason: format!("invalid Location {location:?}: {e}"),
                    })?;
            let mut redirected = self.clone_request(endpoint, &template)?;
            *redirected.url_mut() = next.clone();
            if next.origin() == origin {
                response = self.execute(endpoint, scopes, redirected).await?;
            } else {
                tracing::debug!(
                    registry = %endpoint.registry,
                    host = next.host_str().unwrap_or_default(),
                    "following a redirect to another host without credentials"
                );
                response = self.send(endpoint, redirected, None).await?;
            }
        }
        Err(RegistryError::InvalidResponse {
            registry: endpoint.registry.clone(),
            url: response.url().to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn clone_request(
        &self,
        endpoint: &Endpoint,
        request: &Request,
    ) -> Result<Request, RegistryError> {
        request.try_clone().ok_or_else(|| {
            RegistryError::Config(format!(
                "request {} {} to registry {} has a body that cannot be sent twice",
                request.method(),
                request.url(),
                endpoint.registry
            ))
        })
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        mut request: Request,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        if let Some(authorization) = authorization {
            let mut value = HeaderValue::from_str(authorization).map_err(|_| {
                RegistryError::Config(format!(
                    "credentials for registry {} contain characters not allowed in an HTTP header",
                    endpoint.registry
                ))
            })?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
        } else {
            request.headers_mut().remove(AUTHORIZATION);
        }
        let method = request.method().to_string();
        let url = request.url().to_string();
        self.inner
            .http
            .execute(request)
            .await
            .map_err(|source| RegistryError::Request {
                registry: endpoint.registry.clone(),
                method,
                url,
                source,
            })
    }

    /// Returns the Authorization value to send before any challenge, for a
    /// host that challenged before: basic credentials, or a token for
    /// `scopes` (cached or fetched now).
    async fn cached_authorization(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        match self.inner.tokens.host_auth(&endpoint.host) {
            Some(HostAuth::Basic) => Ok(self
                .credentials(&endpoint.registry)
                .await?
                .map(|credentials| auth::basic_header(&credentials))),
            Some(HostAuth::Bearer { realm, service }) => {
                let key = scopes.join(" ");
                if let Some(token) = self.inner.tokens.token(&endpoint.host, &key) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                // The host asked for a token before: get one for these scopes
                // now, which spares a request that would only get a 401.
                let credentials = self.credentials(&endpoint.registry).await?;
                let (token, lifetime) = auth::fetch_token(
                    &self.inner.http,
                    &endpoint.registry,
                    &realm,
                    service.as_deref(),
                    scopes,
                    credentials.as_ref(),
                )
                .await
                .map_err(|error| match error {
                    RegistryError::Unauthorized { .. } => self.unauthorized(endpoint),
                    other => other,
                })?;
                self.inner
                    .tokens
                    .put_token(&endpoint.host, &key, token.clone(), lifetime);
                Ok(Some(format!("Bearer {token}")))
            }
            None => Ok(None),
        }
    }

    /// Returns the Authorization value that satisfies `challenge`, or `None`
    /// when none can (basic auth without credentials).
    async fn answer_challenge(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        challenge: Challenge,
    ) -> Result<Option<String>, RegistryError> {
        let credentials = self.credentials(&endpoint.registry).await?;
        match challenge {
            Challenge::Basic { .. } => {
                self.inner
                    .tokens
                    .set_host_auth(&endpoint.host, HostAuth::Basic);
                Ok(credentials.map(|credentials| auth::basic_header(&credentials)))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                self.inner.tokens.set_host_auth(
                    &endpoint.host,
                    HostAuth::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    },
                );
                let mut requested = scopes.to_vec();
                if let Some(scope) = scope {
                    for part in scope.split(' ').filter(|part| !part.is_empty()) {
                        if !requested.iter().any(|known| known == part) {
                            requested.push(part.to_string());
                        }
                    }
                }
                let (token, lifetime) = auth::fetch_token(
                    &self.inner.http,
                    &endpoint.registry,
                    &realm,
                    service.as_deref(),
                    &requested,
                    credentials.as_ref(),
                )
                .await
                .map_err(|error| match error {
                    RegistryError::Unauthorized { .. } => self.unauthorized(endpoint),
                    other => other,
                })?;
                self.inner.tokens.put_token(
                    &endpoint.host,
                    &scopes.join(" "),
                    token.clone(),
                    lifetime,
                );
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Checks `credentials` against `registry`'s `/v2/` endpoint. They go
    /// out as basic auth, or are traded for a token when the challenge names
    /// a token server.
    pub(crate) async fn check_credentials(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), RegistryError> {
        let endpoint = self.endpoint_for(registry, "");
        let url = format!("{}/v2/", endpoint.base);
        let rejected = || RegistryError::LoginFailed {
            registry: registry.to_string(),
            user: credentials.username.clone(),
        };
        let request = self.request(&endpoint, Method::GET, &url)?;
        let response = self.send(&endpoint, request, None).await?;
        let authorization = match response.status() {
            status if status.is_success() => return Ok(()),
            StatusCode::UNAUTHORIZED => {
                let challenges: Vec<String> = response
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|value| value.to_str().ok().map(str::to_string))
                    .collect();
                match Challenge::choose(challenges.iter().map(String::as_str)) {
                    Some(Challenge::Basic { .. }) => auth::basic_header(credentials),
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        let (token, _) = auth::fetch_token(
                            &self.inner.http,
                            registry,
                            &realm,
                            service.as_deref(),
                            &[],
                            Some(credentials),
                        )
                        .await
                        .map_err(|error| match error {
                            RegistryError::Unauthorized { .. } => rejected(),
                            other => other,
                        })?;
                        format!("Bearer {token}")
                    }
                    None => return Err(rejected()),
                }
            }
            _ => {
                return Err(self
                    .status_error(&endpoint, "the /v2/ endpoint", "login", response)
                    .await)
            }
        };
        let request = self.request(&endpoint, Method::GET, &url)?;
        let response = self.send(&endpoint, request, Some(&authorization)).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(rejected()),
            _ => Err(self
                .status_error(&endpoint, "the /v2/ endpoint", "login", response)
                .await),
        }
    }

    pub(crate) fn unauthorized(&self, endpoint: &Endpoint) -> RegistryError {
        RegistryError::Unauthorized {
            registry: endpoint.registry.clone(),
            repository: endpoint.repository.clone(),
        }
    }

    /// Turns an unexpected response into an error: 404 names `what`, 401
    /// and 403 name the credentials, others carry the registry's error
    /// codes.
    pub(crate) async fn status_error(
        &self,
        endpoint: &Endpoint,
        what: &str,
        action: &'static str,
        response: Response,
    ) -> RegistryError {
        let status = response.status();
        let url = response.url().to_string();
        let body = read_limited(response, 64 << 10).await.unwrap_or_default();
        let errors = ApiErrors::parse(&body);
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                registry: endpoint.registry.clone(),
                what: what.to_string(),
            },
            StatusCode::UNAUTHORIZED => self.unauthorized(endpoint),
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: endpoint.registry.clone(),
                repository: endpoint.repository.clone(),
                action,
                errors,
            },
            _ => RegistryError::Http {
                registry: endpoint.registry.clone(),
                action: action.to_string(),
                url,
                status: status.as_u16(),
                errors,
            },
        }
    }
}

/// Reads a response body, stopping after `limit + 1` bytes so that the
/// caller can tell an oversized body from one of exactly `limit` bytes.
pub(crate) async fn read_limited(
    response: Response,
    limit: u64,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        body.extend_from_slice(&chunk);
        if body.len() as u64 > limit {
            break;
        }
    }
    Ok(body)
}
