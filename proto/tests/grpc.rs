//! The task service over gRPC (tonic) on a unix socket, with reflection and
//! health beside it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hull_proto::containerd::task::v2;
use hull_proto::containerd::task::v3;
use hull_proto::grpc::{connect_unix, reflection_service, unix_incoming};
use prost::Message;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The v3 service forwards to the v2 implementation: both packages have the
/// same messages, so re-encoding converts between them.
struct V3Bridge(Arc<common::FakeTask>);

fn convert<From: Message, To: Message + Default>(message: From) -> To {
    To::decode(message.encode_to_vec().as_slice()).unwrap()
}

#[tonic::async_trait]
impl v3::task_server::Task for V3Bridge {
    async fn state(
        &self,
        request: tonic::Request<v3::StateRequest>,
    ) -> Result<tonic::Response<v3::StateResponse>, tonic::Status> {
        let request = tonic::Request::new(convert(request.into_inner()));
        let response = v2::task_server::Task::state(&*self.0, request).await?;
        Ok(tonic::Response::new(convert(response.into_inner())))
    }

    async fn create(
        &self,
        _: tonic::Request<v3::CreateTaskRequest>,
    ) -> Result<tonic::Response<v3::CreateTaskResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Create"))
    }

    async fn start(
        &self,
        _: tonic::Request<v3::StartRequest>,
    ) -> Result<tonic::Response<v3::StartResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Start"))
    }

    async fn delete(
        &self,
        _: tonic::Request<v3::DeleteRequest>,
    ) -> Result<tonic::Response<v3::DeleteResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Delete"))
    }

    async fn pids(
        &self,
        _: tonic::Request<v3::PidsRequest>,
    ) -> Result<tonic::Response<v3::PidsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Pids"))
    }

    async fn pause(
        &self,
        _: tonic::Request<v3::PauseRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Pause"))
    }

    async fn resume(
        &self,
        _: tonic::Request<v3::ResumeRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Resume"))
    }

    async fn checkpoint(
        &self,
        _: tonic::Request<v3::CheckpointTaskRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Checkpoint"))
    }

    async fn kill(
        &self,
        _: tonic::Request<v3::KillRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Kill"))
    }

    async fn exec(
        &self,
        _: tonic::Request<v3::ExecProcessRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Exec"))
    }

    async fn resize_pty(
        &self,
        _: tonic::Request<v3::ResizePtyRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("ResizePty"))
    }

    async fn close_io(
        &self,
        _: tonic::Request<v3::CloseIoRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("CloseIO"))
    }

    async fn update(
        &self,
        _: tonic::Request<v3::UpdateTaskRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Update"))
    }

    async fn wait(
        &self,
        _: tonic::Request<v3::WaitRequest>,
    ) -> Result<tonic::Response<v3::WaitResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Wait"))
    }

    async fn stats(
        &self,
        _: tonic::Request<v3::StatsRequest>,
    ) -> Result<tonic::Response<v3::StatsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Stats"))
    }

    async fn connect(
        &self,
        _: tonic::Request<v3::ConnectRequest>,
    ) -> Result<tonic::Response<v3::ConnectResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("Connect"))
    }

    async fn shutdown(
        &self,
        _: tonic::Request<v3::ShutdownRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Err(tonic::Status::unimplemented("Shutdown"))
    }
}

#[tokio::test]
async fn task_round_trip_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grpc.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let fake = common::FakeTask::new();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v2::task_server::TaskServer<common::FakeTask>>()
        .await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(v2::task_server::TaskServer::from_arc(Arc::clone(&fake)))
            .add_service(v3::task_server::TaskServer::new(V3Bridge(Arc::clone(
                &fake,
            ))))
            .add_service(reflection_service().unwrap())
            .add_service(health_service)
            .serve_with_incoming_shutdown(unix_incoming(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = connect_unix(&format!("unix://{}", path.display()))
        .await
        .unwrap();
    let mut client = v2::task_client::TaskClient::new(channel.clone());

    let mut request = tonic::Request::new(v2::StateRequest {
        id: "c1".into(),
        exec_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("containerd-namespace", "moby".parse().unwrap());
    let state = client.state(request).await.unwrap().into_inner();
    assert_eq!(state.id, "c1");
    assert_eq!(state.pid, common::PID);
    assert_eq!(state.bundle, "/run/bundle");
    assert_eq!(
        fake.namespaces.lock().unwrap().as_slice(),
        [Some("moby".to_owned())]
    );

    let created = client
        .create(v2::CreateTaskRequest {
            id: "c2".into(),
            rootfs: vec![hull_proto::containerd::types::Mount {
                r#type: "overlay".into(),
                source: "overlay".into(),
                target: String::new(),
                options: vec!["lowerdir=/a".into()],
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.pid, common::PID + 1);

    let connected = client
        .connect(v2::ConnectRequest { id: "c1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(connected.version, "hull-test");

    let error = client
        .state(v2::StateRequest {
            id: "missing".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);

    let mut v3_client = v3::task_client::TaskClient::new(channel.clone());
    let state = v3_client
        .state(v3::StateRequest {
            id: "c3".into(),
            exec_id: "e3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.exec_id, "e3");
    assert_eq!(state.pid, common::PID);

    let mut health_client = HealthClient::new(channel);
    let health = health_client
        .check(HealthCheckRequest {
            service: "containerd.task.v2.Task".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn descriptor_set_lists_services() {
    let set = prost_types::FileDescriptorSet::decode(hull_proto::TASK_FILE_DESCRIPTOR_SET).unwrap();
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .collect();
    assert_eq!(
        services,
        [
            "containerd.task.v2.Task",
            "containerd.task.v3.Task",
            "containerd.services.events.ttrpc.v1.Events"
        ]
    );
    assert!(set
        .file
        .iter()
        .any(|file| file.name() == "google/protobuf/any.proto"));
}
