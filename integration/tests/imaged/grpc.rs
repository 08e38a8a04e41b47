//! hull's Images API through a tonic client, and the health and reflection
//! services on the same socket.

use hull_integration::{require_root, require_tools};
use hull_proto::hull::images::v1 as pb;
use pb::images_client::ImagesClient;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::fixture::{block_on, busybox_registry, Imaged};

#[test]
fn images_api_calls() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::start();
    let (registry, reference) = busybox_registry(imaged.dir.path());

    block_on(async {
        let mut client = ImagesClient::new(imaged.channel().await);

        let mut stream = client
            .pull(pb::PullRequest {
                reference: reference.clone(),
                ..Default::default()
            })
            .await
            .expect("Pull")
            .into_inner();
        let mut progress = 0;
        let mut image = None;
        while let Some(message) = stream.message().await.expect("Pull stream") {
            match message.event {
                Some(pb::pull_response::Event::Progress(_)) => progress += 1,
                Some(pb::pull_response::Event::Image(pulled)) => image = Some(pulled),
                None => {}
            }
        }
        let image = image.expect("the pull stream ends with the image");
        assert!(progress > 0, "no progress messages");
        assert_eq!(image.name, reference);
        assert!(image.id.starts_with("sha256:"));
        assert!(image.size > 0);

        let listed = client
            .list(pb::ListRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.images.len(), 1);
        let by_repository = client
            .list(pb::ListRequest {
                filter: format!("{}/test/busybox", registry.host()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_repository.images.len(), 1);

        let inspected = client
            .inspect(pb::InspectRequest {
                image: reference.clone(),
            })
            .await
            .expect("Inspect")
            .into_inner();
        assert_eq!(inspected.layers.len(), 1);
        assert_eq!(inspected.diff_ids.len(), 1);
        assert!(!inspected.manifest.is_empty());
        assert!(!inspected.config.is_empty());

        let absent = client
            .inspect(pb::InspectRequest {
                image: format!("{}/test/absent:1", registry.host()),
            })
            .await
            .expect_err("Inspect of an absent image");
        assert_eq!(absent.code(), tonic::Code::NotFound, "{absent:?}");

        let malformed = client
            .inspect(pb::InspectRequest {
                image: String::from("Bad//Reference"),
            })
            .await
            .expect_err("Inspect of a malformed reference");
        assert_eq!(
            malformed.code(),
            tonic::Code::InvalidArgument,
            "{malformed:?}"
        );
        assert!(malformed.message().contains("invalid image reference"));

        let remote = client
            .inspect_remote(pb::InspectRemoteRequest {
                reference: reference.clone(),
                ..Default::default()
            })
            .await
            .expect("InspectRemote")
            .into_inner();
        assert_eq!(
            remote.descriptor.map(|d| d.digest),
            image.target.map(|d| d.digest)
        );
        assert!(!remote.config.is_empty());

        let prepared = client
            .prepare_rootfs(pb::PrepareRootfsRequest {
                container_id: String::from("api-test"),
                image: reference.clone(),
                generate_spec: true,
                spec_options: Some(pb::SpecOptions {
                    args: vec![String::from("echo"), String::from("hi")],
                    ..Default::default()
                }),
                rootfs_path: String::new(),
            })
            .await
            .expect("PrepareRootfs")
            .into_inner();
        assert_eq!(prepared.mounts.len(), 1, "{prepared:?}");
        assert_eq!(prepared.mounts[0].r#type, "overlay");
        assert!(prepared.mounts[0]
            .options
            .iter()
            .any(|option| option.starts_with("lowerdir=")));
        let spec: serde_json::Value = serde_json::from_str(&prepared.spec_json).expect("spec JSON");
        assert_eq!(spec["root"]["path"], "rootfs");
        assert_eq!(spec["process"]["args"][0], "echo");

        client
            .release_rootfs(pb::ReleaseRootfsRequest {
                container_id: String::from("api-test"),
            })
            .await
            .expect("ReleaseRootfs");
        let released_twice = client
            .release_rootfs(pb::ReleaseRootfsRequest {
                container_id: String::from("api-test"),
            })
            .await
            .expect_err("second ReleaseRootfs");
        assert_eq!(released_twice.code(), tonic::Code::NotFound);

        let removed = client
            .remove(pb::RemoveRequest {
                image: reference.clone(),
                force: false,
            })
            .await
            .expect("Remove")
            .into_inner();
        assert_eq!(removed.removed, vec![reference.clone()]);
        let gc = client
            .garbage_collect(pb::GarbageCollectRequest {})
            .await
            .expect("GarbageCollect")
            .into_inner();
        assert!(gc.removed_blobs >= 3, "{gc:?}");
        let check = client
            .check(pb::CheckRequest {})
            .await
            .expect("Check")
            .into_inner();
        assert!(check.problems.is_empty(), "{check:?}");
    });
}

#[test]
fn health_and_reflection() {
    require_root!();
    let imaged = Imaged::start();

    block_on(async {
        let channel = imaged.channel().await;
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            health.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream_once(request))
            .await
            .expect("reflection")
            .into_inner();
        let response = responses
            .message()
            .await
            .expect("reflection response")
            .expect("one response");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection response {response:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&String::from("hull.images.v1.Images")),
            "{names:?}"
        );
        assert!(
            names.contains(&String::from("runtime.v1.ImageService")),
            "{names:?}"
        );
    });
}

/// Wraps `item` in a request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter(vec![item])
}
