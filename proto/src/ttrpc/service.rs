//! Services that a ttrpc [`Server`](super::Server) dispatches requests to.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio::time::Instant;

use super::status::Status;
use super::wire::KeyValue;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A method handler on encoded messages: request payload in, response payload out.
pub(crate) type MethodHandler =
    Arc<dyn Fn(RequestContext, Vec<u8>) -> BoxFuture<Result<Vec<u8>, Status>> + Send + Sync>;

/// Request metadata: string keys, lower-cased as in ttrpc and gRPC, each with
/// one or more values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: BTreeMap<String, Vec<String>>,
}

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .get(&key.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    pub fn get_all(&self, key: &str) -> &[String] {
        self.entries
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Replaces the values of `key` with `value`.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.entries
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }

    /// Adds `value` to the values of `key`.
    pub fn append(&mut self, key: &str, value: impl Into<String>) {
        self.entries
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over every (key, value) pair, keys in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().flat_map(|(key, values)| {
            values
                .iter()
                .map(move |value| (key.as_str(), value.as_str()))
        })
    }

    pub(crate) fn to_key_values(&self) -> Vec<KeyValue> {
        self.iter()
            .map(|(key, value)| KeyValue {
                key: key.to_owned(),
                value: value.to_owned(),
            })
            .collect()
    }

    pub(crate) fn from_key_values(pairs: Vec<KeyValue>) -> Self {
        let mut metadata = Self::new();
        for pair in pairs {
            metadata.append(&pair.key, pair.value);
        }
        metadata
    }
}

/// Data of one ttrpc call besides its request message.
///
/// Handlers added with [`Service::add_tonic_method`] find it in the
/// `tonic::Request` extensions.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub service: String,
    pub method: String,
    pub stream_id: u32,
    pub metadata: Metadata,
    /// When the client stops waiting, from the request's `timeout_nano`. The
    /// server ends the call with `DeadlineExceeded` at that instant.
    pub deadline: Option<Instant>,
}

/// A named ttrpc service: a table of unary methods.
pub struct Service {
    name: String,
    methods: HashMap<String, MethodHandler>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<&String> = self.methods.keys().collect();
        methods.sort();
        formatter
            .debug_struct("Service")
            .field("name", &self.name)
            .field("methods", &methods)
            .finish()
    }
}

impl Service {
    /// Creates a service with no methods. `name` is the fully qualified
    /// protobuf service name, such as `containerd.task.v2.Task`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            methods: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the same methods under another service name.
    ///
    /// The task API packages `containerd.task.v2` and `containerd.task.v3`
    /// have identical messages, so a shim can implement the v3 trait once
    /// and also register it as `containerd.task.v2.Task` for containerd 1.6
    /// and 1.7.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Lists the method names, sorted.
    pub fn method_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn method(&self, name: &str) -> Option<&MethodHandler> {
        self.methods.get(name)
    }

    /// Adds a unary method whose handler takes the decoded request.
    ///
    /// A payload that does not decode as `Req` fails the call with
    /// `InvalidArgument` without calling the handler. A method added twice
    /// replaces the first handler.
    pub fn add_method<Req, Resp, F, Fut>(&mut self, method: &str, handler: F)
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let wrapped: MethodHandler = Arc::new(move |context: RequestContext, payload: Vec<u8>| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let request = decode_request::<Req>(&context, &payload)?;
                let response = handler(context, request).await?;
                Ok(response.encode_to_vec())
            })
        });
        self.methods.insert(method.to_owned(), wrapped);
    }

    /// Adds a unary method whose handler has the signature of a tonic server
    /// trait method, so one trait implementation serves gRPC and ttrpc.
    ///
    /// The request carries the ttrpc metadata as ASCII gRPC metadata (entries
    /// that are not valid gRPC metadata are left out) and the
    /// [`RequestContext`] as an extension.
    pub fn add_tonic_method<Req, Resp, F, Fut>(&mut self, method: &str, handler: F)
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(tonic::Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let wrapped: MethodHandler = Arc::new(move |context: RequestContext, payload: Vec<u8>| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let message = decode_request::<Req>(&context, &payload)?;
                let request = tonic_request(context, message);
                let response = handler(request).await.map_err(Status::from)?;
                Ok(response.into_inner().encode_to_vec())
            })
        });
        self.methods.insert(method.to_owned(), wrapped);
    }
}

fn decode_request<Req: Message + Default>(
    context: &RequestContext,
    payload: &[u8],
) -> Result<Req, Status> {
    Req::decode(payload).map_err(|error| {
        Status::invalid_argument(format!(
            "invalid request payload for {}/{}: {error}",
            context.service, context.method
        ))
    })
}

fn tonic_request<Req>(context: RequestContext, message: Req) -> tonic::Request<Req> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    for (key, value) in context.metadata.iter() {
        let Ok(key) = tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()) else {
            tracing::debug!(key, "ttrpc metadata key is not valid gRPC metadata");
            continue;
        };
        let Ok(value) = tonic::metadata::AsciiMetadataValue::try_from(value) else {
            tracing::debug!(%key, "ttrpc metadata value is not valid gRPC metadata");
            continue;
        };
        metadata.append(key, value);
    }
    request.extensions_mut().insert(context);
    request
}
