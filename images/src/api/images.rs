//! `hull.images.v1.Images` over the store and the registry clients.

use hull_proto::hull::images::v1 as pb;
use pb::images_server::Images;
use tonic::{Request, Response, Status};

use super::copy::Copy;
use super::transfer::{self, ResponseStream};
use super::{convert, import_export, local, lookup, status, Daemon};
use crate::registry::platform;
use crate::{pull, Reference};

fn parse_reference(text: &str) -> Result<Reference, Status> {
    text.parse().map_err(status::from_reference)
}

#[tonic::async_trait]
impl Images for Daemon {
    type PullStream = ResponseStream<pb::PullResponse>;
    type PushStream = ResponseStream<pb::PushResponse>;
    type CopyStream = ResponseStream<pb::PushResponse>;

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let request = request.into_inner();
        let reference = parse_reference(&request.reference)?;
        let platform = convert::platform_from(request.platform.as_ref())?
            .unwrap_or_else(platform::host_platform);
        let client = self
            .registries()
            .client_with(reference.registry(), request.auth.as_ref())?;
        let daemon = self.clone();
        let stream = transfer::spawn(
            self,
            format!("pull of {reference}"),
            |progress| pb::PullResponse {
                event: Some(pb::pull_response::Event::Progress(progress)),
            },
            |image| pb::PullResponse {
                event: Some(pb::pull_response::Event::Image(image)),
            },
            move |progress| async move {
                let record = pull::pull(&client, daemon.store(), &reference, &platform, progress)
                    .await
                    .map_err(status::from_pull)?;
                let name = record.name.clone();
                let info = daemon
                    .blocking(move |store| lookup::find_one(store, &name))
                    .await?;
                Ok(convert::image(&info))
            },
        );
        Ok(Response::new(stream))
    }

    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let request = request.into_inner();
        let image = request.image.clone();
        let info = self
            .blocking(move |store| lookup::find_one(store, &image))
            .await?;
        let destination = if request.destination.is_empty() {
            parse_reference(&info.record.name)?
        } else {
            parse_reference(&request.destination)?
        };
        let client = self
            .registries()
            .client_with(destination.registry(), request.auth.as_ref())?;
        let daemon = self.clone();
        let stream = transfer::spawn(
            self,
            format!("push of {} to {destination}", info.record.name),
            push_progress,
            push_digest,
            move |progress| async move {
                let digest = pull::push(
                    &client,
                    daemon.store(),
                    &info.record,
                    &destination,
                    progress,
                )
                .await
                .map_err(status::from_pull)?;
                Ok(digest.to_string())
            },
        );
        Ok(Response::new(stream))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let filter = request.into_inner().filter;
        let images = self
            .blocking(move |store| local::list(store, &filter))
            .await?;
        Ok(Response::new(pb::ListResponse { images }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        let image = request.into_inner().image;
        let response = self
            .blocking(move |store| local::inspect(store, &image))
            .await?;
        Ok(Response::new(response))
    }

    async fn inspect_remote(
        &self,
        request: Request<pb::InspectRemoteRequest>,
    ) -> Result<Response<pb::InspectRemoteResponse>, Status> {
        let request = request.into_inner();
        let reference = parse_reference(&request.reference)?;
        let platform = convert::platform_from(request.platform.as_ref())?
            .unwrap_or_else(platform::host_platform);
        let client = self
            .registries()
            .client_with(reference.registry(), request.auth.as_ref())?;
        let response = super::remote::inspect(&client, &reference, &platform).await?;
        Ok(Response::new(response))
    }

    async fn tag(
        &self,
        request: Request<pb::TagRequest>,
    ) -> Result<Response<pb::TagResponse>, Status> {
        let request = request.into_inner();
        let image = self
            .blocking(move |store| local::tag(store, &request.source, &request.target))
            .await?;
        Ok(Response::new(pb::TagResponse { image: Some(image) }))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let request = request.into_inner();
        let removed = self
            .blocking(move |store| local::remove(store, &request.image, request.force))
            .await?;
        Ok(Response::new(pb::RemoveResponse { removed }))
    }

    async fn copy(
        &self,
        request: Request<pb::CopyRequest>,
    ) -> Result<Response<Self::CopyStream>, Status> {
        let request = request.into_inner();
        let source = parse_reference(&request.source)?;
        let destination = parse_reference(&request.destination)?;
        let source_client = self
            .registries()
            .client_with(source.registry(), request.source_auth.as_ref())?;
        let destination_client = self
            .registries()
            .client_with(destination.registry(), request.destination_auth.as_ref())?;
        let scratch = self.scratch().to_path_buf();
        let stream = transfer::spawn(
            self,
            format!("copy of {source} to {destination}"),
            push_progress,
            push_digest,
            move |progress| async move {
                Copy {
                    source_client,
                    destination_client,
                    source,
                    destination,
                    scratch,
                    progress,
                }
                .run()
                .await
            },
        );
        Ok(Response::new(stream))
    }

    async fn import(
        &self,
        request: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let request = request.into_inner();
        let images = import_export::import(self, request).await?;
        Ok(Response::new(pb::ImportResponse { images }))
    }

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        let request = request.into_inner();
        let size = import_export::export(self, request).await?;
        Ok(Response::new(pb::ExportResponse { size }))
    }

    async fn prepare_rootfs(
        &self,
        request: Request<pb::PrepareRootfsRequest>,
    ) -> Result<Response<pb::PrepareRootfsResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .blocking(move |store| local::prepare_rootfs(store, request))
            .await?;
        Ok(Response::new(response))
    }

    async fn release_rootfs(
        &self,
        request: Request<pb::ReleaseRootfsRequest>,
    ) -> Result<Response<pb::ReleaseRootfsResponse>, Status> {
        let container_id = request.into_inner().container_id;
        self.blocking(move |store| local::release_rootfs(store, &container_id))
            .await?;
        Ok(Response::new(pb::ReleaseRootfsResponse {}))
    }

    async fn garbage_collect(
        &self,
        _request: Request<pb::GarbageCollectRequest>,
    ) -> Result<Response<pb::GarbageCollectResponse>, Status> {
        let response = self.blocking(local::garbage_collect).await?;
        Ok(Response::new(response))
    }

    async fn check(
        &self,
        _request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let response = self.blocking(local::check).await?;
        Ok(Response::new(response))
    }
}

fn push_progress(progress: pb::LayerProgress) -> pb::PushResponse {
    pb::PushResponse {
        event: Some(pb::push_response::Event::Progress(progress)),
    }
}

fn push_digest(digest: String) -> pb::PushResponse {
    pb::PushResponse {
        event: Some(pb::push_response::Event::Digest(digest)),
    }
}
