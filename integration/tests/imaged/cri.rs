//! Every CRI ImageService call through a tonic client, as kubelet makes
//! them.

use base64::Engine as _;
use cri::image_service_client::ImageServiceClient;
use hull_integration::registry::Registry;
use hull_integration::{require_root, require_tools};
use hull_proto::runtime::v1 as cri;

use crate::fixture::{block_on, busybox_registry, push_busybox, Imaged, BUSYBOX_REPOSITORY};

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

#[test]
fn cri_image_service_calls() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::start();
    let (registry, reference) = busybox_registry(imaged.dir.path());

    block_on(async {
        let mut client = ImageServiceClient::new(imaged.channel().await);

        let pulled = client
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                auth: None,
            })
            .await
            .expect("PullImage")
            .into_inner();
        assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");

        let all = client
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .expect("ListImages")
            .into_inner()
            .images;
        assert_eq!(all.len(), 1, "{all:?}");
        let image = &all[0];
        assert_eq!(image.id, pulled.image_ref);
        assert_eq!(image.repo_tags, vec![reference.clone()]);
        assert_eq!(image.repo_digests.len(), 1, "{image:?}");
        let digest_prefix = format!("{}/{BUSYBOX_REPOSITORY}@sha256:", registry.host());
        assert!(
            image.repo_digests[0].starts_with(&digest_prefix),
            "{image:?}"
        );
        assert!(image.size > 0);
        assert_eq!(image.uid, Some(cri::Int64Value { value: 0 }));

        let filter = |image: &str| cri::ListImagesRequest {
            filter: Some(cri::ImageFilter { image: spec(image) }),
        };
        let matching = client.list_images(filter(&reference)).await.unwrap();
        assert_eq!(matching.into_inner().images.len(), 1);
        let other = format!("{}/test/other:1", registry.host());
        let none = client.list_images(filter(&other)).await.unwrap();
        assert_eq!(none.into_inner().images.len(), 0);

        let status = client
            .image_status(cri::ImageStatusRequest {
                image: spec(&reference),
                verbose: true,
            })
            .await
            .expect("ImageStatus")
            .into_inner();
        assert_eq!(
            status.image.as_ref().map(|i| i.id.clone()),
            Some(pulled.image_ref.clone())
        );
        assert!(status.info.contains_key("info"), "{status:?}");
        let by_id = client
            .image_status(cri::ImageStatusRequest {
                image: spec(&pulled.image_ref),
                verbose: false,
            })
            .await
            .expect("ImageStatus by id")
            .into_inner();
        assert!(by_id.image.is_some());

        let unknown = client
            .image_status(cri::ImageStatusRequest {
                image: spec(&other),
                verbose: false,
            })
            .await
            .expect("ImageStatus of an unknown image")
            .into_inner();
        assert!(unknown.image.is_none(), "{unknown:?}");

        let fs = client
            .image_fs_info(cri::ImageFsInfoRequest {})
            .await
            .expect("ImageFsInfo")
            .into_inner();
        assert_eq!(fs.image_filesystems.len(), 1);
        let usage = &fs.image_filesystems[0];
        assert!(usage.timestamp > 0);
        assert!(usage.used_bytes.as_ref().unwrap().value > 0);
        assert!(usage.inodes_used.as_ref().unwrap().value > 0);
        let mountpoint = &usage.fs_id.as_ref().unwrap().mountpoint;
        assert!(mountpoint.starts_with('/'), "{usage:?}");

        for attempt in ["first", "second"] {
            client
                .remove_image(cri::RemoveImageRequest {
                    image: spec(&reference),
                })
                .await
                .unwrap_or_else(|status| panic!("{attempt} RemoveImage: {status:?}"));
        }
        let after = client
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .unwrap()
            .into_inner();
        assert!(after.images.is_empty(), "{after:?}");

        let bad = client
            .pull_image(cri::PullImageRequest {
                image: spec("Bad//Reference"),
                auth: None,
            })
            .await
            .expect_err("PullImage of a malformed reference");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    });
}

#[test]
fn cri_pull_with_auth() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    let imaged = Imaged::start();
    let registry = Registry::start_with_user("kube", "let-me-in");
    push_busybox(
        &registry,
        imaged.dir.path(),
        "1",
        &["--dest-creds", "kube:let-me-in"],
    );
    let reference = format!("{}/{BUSYBOX_REPOSITORY}:1", registry.host());

    block_on(async {
        let mut client = ImageServiceClient::new(imaged.channel().await);

        let anonymous = client
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                auth: None,
            })
            .await
            .expect_err("anonymous pull from a registry that needs a login");
        assert_eq!(
            anonymous.code(),
            tonic::Code::Unauthenticated,
            "{anonymous:?}"
        );

        let wrong = client
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                auth: Some(cri::AuthConfig {
                    username: String::from("kube"),
                    password: String::from("wrong"),
                    ..Default::default()
                }),
            })
            .await
            .expect_err("pull with a wrong password");
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated, "{wrong:?}");

        let with_password = client
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                auth: Some(cri::AuthConfig {
                    username: String::from("kube"),
                    password: String::from("let-me-in"),
                    ..Default::default()
                }),
            })
            .await
            .expect("pull with user and password")
            .into_inner();
        assert!(with_password.image_ref.starts_with("sha256:"));

        let encoded = base64::engine::general_purpose::STANDARD.encode("kube:let-me-in");
        let with_auth = client
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                auth: Some(cri::AuthConfig {
                    auth: encoded,
                    ..Default::default()
                }),
            })
            .await
            .expect("pull with the auth field")
            .into_inner();
        assert_eq!(with_auth.image_ref, with_password.image_ref);
    });
}
