//! Flows docker-registry cannot show without a token-signing set-up or a
//! storage redirect: bearer tokens from a token server, and blob redirects
//! to another host. Both sides are loopback servers written here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use hull_images::registry::{RegistryConfig, RegistryError, OCI_MANIFEST};
use oci_spec::image::{Descriptor, MediaType};

use crate::auth::config_file;
use crate::http::{Request, Response, TestServer};
use crate::{block_on, client_with, fetch_all, reference, sha256};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Starts a token server that hands out `tok-N` (N counting up) to bob, and
/// `anon-N` in the OAuth2 `access_token` field to anonymous requests.
fn token_server() -> TestServer {
    let issued = AtomicUsize::new(0);
    TestServer::start(move |request| {
        if request.path() != "/token" || request.query("service") != ["hull-test"] {
            return Response::new(400);
        }
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        match request.header("authorization") {
            Some(value) if value == basic("bob", "pw") => {
                Response::new(200).body(format!(r#"{{"token":"tok-{n}","expires_in":300}}"#))
            }
            Some(_) => Response::new(401),
            None => Response::new(200).body(format!(r#"{{"access_token":"anon-{n}"}}"#)),
        }
    })
}

/// Starts a registry that accepts `Bearer tok-N` with N at least
/// `min_token`, and anonymous tokens for `public/app`. Other requests get a
/// bearer challenge.
fn bearer_registry(token_port: u16, min_token: Arc<AtomicUsize>) -> TestServer {
    TestServer::start(move |request: &Request| {
        let repository = request
            .path()
            .strip_prefix("/v2/")
            .and_then(|rest| rest.split("/manifests/").next())
            .unwrap_or_default()
            .to_string();
        let accepted = match request.header("authorization") {
            Some(value) => match value.strip_prefix("Bearer ") {
                Some(token) if token.starts_with("tok-") => token[4..]
                    .parse::<usize>()
                    .is_ok_and(|n| n >= min_token.load(Ordering::SeqCst)),
                Some(token) => token.starts_with("anon-") && repository == "public/app",
                None => false,
            },
            None => false,
        };
        if !accepted {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{token_port}/token",service="hull-test",scope="repository:{repository}:pull""#
            );
            return Response::new(401)
                .header("WWW-Authenticate", &challenge)
                .body(
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
        }
        Response::new(200)
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", &sha256(MANIFEST))
            .body(MANIFEST)
    })
}

#[test]
fn bearer_token_cached_and_shared() {
    let tokens = token_server();
    let registry = bearer_registry(tokens.port(), Arc::new(AtomicUsize::new(0)));
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &registry.host(), "bob", "pw");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));
    let image = reference(&format!("{}/team/app:v1", registry.host()));

    block_on(async {
        let resolved = client.resolve(&image).await.unwrap();
        assert_eq!(resolved.bytes, MANIFEST);
        let clone = client.clone();
        clone.resolve(&image).await.unwrap();
    });

    let token_requests = tokens.requests();
    assert_eq!(token_requests.len(), 1, "{token_requests:?}");
    assert_eq!(
        token_requests[0].header("authorization"),
        Some(basic("bob", "pw").as_str())
    );
    assert_eq!(
        token_requests[0].query("scope"),
        ["repository:team/app:pull"]
    );
    let requests = registry.requests();
    let auth: Vec<Option<&str>> = requests
        .iter()
        .map(|request| request.header("authorization"))
        .collect();
    assert_eq!(auth, [None, Some("Bearer tok-1"), Some("Bearer tok-1")]);
}

#[test]
fn bearer_anonymous_access_token() {
    let tokens = token_server();
    let registry = bearer_registry(tokens.port(), Arc::new(AtomicUsize::new(0)));
    let (client, _dir) = client_with(RegistryConfig::default(), None);
    let image = reference(&format!("{}/public/app:v1", registry.host()));

    let resolved = block_on(client.resolve(&image)).unwrap();
    assert_eq!(resolved.bytes, MANIFEST);
    let token_requests = tokens.requests();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].header("authorization"), None);
}

#[test]
fn bearer_retry_after_rejected_token() {
    let tokens = token_server();
    let min_token = Arc::new(AtomicUsize::new(0));
    let registry = bearer_registry(tokens.port(), min_token.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &registry.host(), "bob", "pw");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));
    let image = reference(&format!("{}/team/app:v1", registry.host()));

    block_on(async {
        client.resolve(&image).await.unwrap();
        // The registry now rejects tok-1, which the client still has cached.
        min_token.store(2, Ordering::SeqCst);
        client.resolve(&image).await.unwrap();
    });
    assert_eq!(tokens.requests().len(), 2);
    let last = registry.requests().last().unwrap().clone();
    assert_eq!(last.header("authorization"), Some("Bearer tok-2"));
}

#[test]
fn bearer_wrong_credentials_error() {
    let tokens = token_server();
    let registry = bearer_registry(tokens.port(), Arc::new(AtomicUsize::new(0)));
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &registry.host(), "bob", "wrong");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));
    let image = reference(&format!("{}/team/app:v1", registry.host()));

    let error = block_on(client.resolve(&image)).unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("team/app"), "{message}");
    assert!(message.contains("run hullctl login"), "{message}");
}

#[test]
fn redirect_drops_authorization() {
    let blob = b"blob bytes kept on another host".to_vec();
    let digest = sha256(&blob);
    let served = blob.clone();
    let storage = TestServer::start(move |_| Response::new(200).body(served.clone()));
    let storage_port = storage.port();
    let blob_path = format!("/v2/team/app/blobs/{digest}");
    let registry = TestServer::start(move |request| {
        if request.header("authorization") != Some(basic("bob", "pw").as_str()) {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="hull-test""#);
        }
        if request.path() == blob_path {
            let location = format!("http://127.0.0.1:{storage_port}/storage/blob?signature=abc");
            return Response::new(307).header("Location", &location);
        }
        Response::new(404)
    });
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &registry.host(), "bob", "pw");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));
    let image = reference(&format!("{}/team/app:v1", registry.host()));
    let descriptor = Descriptor::new(
        MediaType::ImageLayerGzip,
        blob.len() as u64,
        digest.parse::<oci_spec::image::Digest>().unwrap(),
    );

    let data = block_on(fetch_all(&client, &image, &descriptor));
    assert_eq!(data, blob);

    let storage_requests = storage.requests();
    assert_eq!(storage_requests.len(), 1);
    assert_eq!(storage_requests[0].target, "/storage/blob?signature=abc");
    assert_eq!(storage_requests[0].header("authorization"), None);
    let registry_auth: Vec<bool> = registry
        .requests()
        .iter()
        .map(|request| request.header("authorization").is_some())
        .collect();
    assert_eq!(registry_auth, [false, true]);
}
