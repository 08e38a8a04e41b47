//! Publishing task events to containerd over ttrpc.
//!
//! A shim sends each event in an envelope to
//! `containerd.services.events.ttrpc.v1.Events/Forward` on containerd's ttrpc
//! socket (the `TTRPC_ADDRESS` environment variable of containerd 1.6 and
//! 1.7, or `containerd_ttrpc_address` of the 2.3 bootstrap parameters).

use std::time::{Duration, SystemTime};

use prost::{Message, Name};
use tokio::sync::Mutex;

use crate::containerd::events::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOom,
    TaskPaused, TaskResumed, TaskStart,
};
use crate::containerd::services::events::ttrpc::v1::events_ttrpc::EventsClient;
use crate::containerd::services::events::ttrpc::v1::ForwardRequest;
use crate::containerd::types::Envelope;
use crate::ttrpc::{CallOptions, Client, Code, Status};

/// ttrpc metadata key that carries the containerd namespace of a call.
pub const NAMESPACE_TTRPC_KEY: &str = "containerd-namespace-ttrpc";

/// gRPC metadata key that carries the containerd namespace of a call.
pub const NAMESPACE_GRPC_KEY: &str = "containerd-namespace";

/// Time containerd's own shims allow one Forward call (containerd 1.6).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A task event message with the topic containerd files it under.
pub trait TaskEvent: Message + Name {
    const TOPIC: &'static str;
}

macro_rules! task_events {
    ($($event:ty => $topic:literal,)*) => {
        $(impl TaskEvent for $event {
            const TOPIC: &'static str = $topic;
        })*
    };
}

task_events! {
    TaskCreate => "/tasks/create",
    TaskStart => "/tasks/start",
    TaskOom => "/tasks/oom",
    TaskExit => "/tasks/exit",
    TaskDelete => "/tasks/delete",
    TaskExecAdded => "/tasks/exec-added",
    TaskExecStarted => "/tasks/exec-started",
    TaskPaused => "/tasks/paused",
    TaskResumed => "/tasks/resumed",
    TaskCheckpointed => "/tasks/checkpointed",
}

/// Packs `message` into an `Any` whose type URL is the bare message name,
/// such as `containerd.events.TaskExit`.
///
/// containerd 1.6 resolves type URLs with typeurl 1.0, which finds a
/// message by its bare name only. containerd 2.x accepts this form too.
pub fn to_any<M: Message + Name>(message: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: M::full_name(),
        value: message.encode_to_vec(),
    }
}

/// Unpacks an `Any` holding an `M`, with or without a `host/` prefix in its
/// type URL. Returns `None` for an `Any` of another type.
pub fn from_any<M: Message + Name + Default>(
    any: &prost_types::Any,
) -> Option<Result<M, prost::DecodeError>> {
    let name = any
        .type_url
        .rsplit_once('/')
        .map_or(any.type_url.as_str(), |(_, name)| name);
    (name == M::full_name()).then(|| M::decode(any.value.as_slice()))
}

/// Wraps `event` in an envelope stamped with the current time.
pub fn envelope<E: TaskEvent>(namespace: &str, event: &E) -> Envelope {
    Envelope {
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
        namespace: namespace.to_owned(),
        topic: E::TOPIC.to_owned(),
        event: Some(to_any(event)),
    }
}

/// Sends events to containerd's ttrpc event service.
///
/// It connects on first use and reconnects once when a call finds the
/// connection closed. Concurrent publishes go out one at a time, in the order
/// they take the connection lock. A failed publish returns its error, and the
/// caller decides whether to retry.
#[derive(Debug)]
pub struct Publisher {
    address: String,
    timeout: Duration,
    client: Mutex<Option<EventsClient>>,
}

impl Publisher {
    /// Creates a publisher for containerd's ttrpc socket at `address`, a
    /// path or a `unix://` URI.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            timeout: FORWARD_TIMEOUT,
            client: Mutex::new(None),
        }
    }

    /// Sets the time allowed for one Forward call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Publishes `event` in `namespace` under the event's topic.
    pub async fn publish<E: TaskEvent>(&self, namespace: &str, event: &E) -> Result<(), Status> {
        self.forward(envelope(namespace, event)).await
    }

    /// Forwards a ready envelope.
    pub async fn forward(&self, envelope: Envelope) -> Result<(), Status> {
        let mut options = CallOptions::with_timeout(self.timeout);
        options
            .metadata
            .insert(NAMESPACE_TTRPC_KEY, envelope.namespace.clone());
        let request = ForwardRequest {
            envelope: Some(envelope),
        };

        let mut slot = self.client.lock().await;
        for attempt in 0..2 {
            let client = match slot.as_ref() {
                Some(client) => client.clone(),
                None => {
                    let connection = Client::connect(&self.address).await.map_err(|error| {
                        Status::unavailable(format!(
                            "failed to connect to containerd at {}: {error}",
                            self.address
                        ))
                    })?;
                    let client = EventsClient::new(connection);
                    *slot = Some(client.clone());
                    client
                }
            };
            match client.forward(&request, &options).await {
                Err(status) if status.code() == Code::Unavailable && attempt == 0 => {
                    tracing::debug!(%status, "event connection closed, reconnecting");
                    *slot = None;
                }
                result => return result,
            }
        }
        Err(Status::unavailable(format!(
            "containerd at {} closed the event connection twice",
            self.address
        )))
    }
}
