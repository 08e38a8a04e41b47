//! A task service for tests that records calls and returns fixed data.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hull_proto::containerd::task::v2::{self as task, task_server::Task};
use hull_proto::containerd::v1::types::Status as ProcessStatus;
use tonic::{Request, Response, Status};

/// Process id that [`FakeTask`] reports for every container.
pub const PID: u32 = 4242;

/// Records the namespace seen by each `State` call and returns fixed data
/// from `State`, `Create`, `Connect` and `Wait`. `Wait` on the id "slow"
/// waits for a minute; every other method returns `Unimplemented`.
#[derive(Default)]
pub struct FakeTask {
    pub namespaces: Mutex<Vec<Option<String>>>,
}

impl FakeTask {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

fn unimplemented<T>(method: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{method} is not implemented"
    )))
}

#[tonic::async_trait]
impl Task for FakeTask {
    async fn state(
        &self,
        request: Request<task::StateRequest>,
    ) -> Result<Response<task::StateResponse>, Status> {
        self.namespaces
            .lock()
            .unwrap()
            .push(hull_proto::grpc::namespace(&request));
        let request = request.into_inner();
        if request.id == "missing" {
            return Err(Status::not_found("container missing not found"));
        }
        Ok(Response::new(task::StateResponse {
            id: request.id,
            bundle: "/run/bundle".into(),
            pid: PID,
            status: ProcessStatus::Running as i32,
            exec_id: request.exec_id,
            ..Default::default()
        }))
    }

    async fn create(
        &self,
        request: Request<task::CreateTaskRequest>,
    ) -> Result<Response<task::CreateTaskResponse>, Status> {
        let request = request.into_inner();
        let pid = PID + request.rootfs.len() as u32;
        Ok(Response::new(task::CreateTaskResponse { pid }))
    }

    async fn start(
        &self,
        _: Request<task::StartRequest>,
    ) -> Result<Response<task::StartResponse>, Status> {
        unimplemented("Start")
    }

    async fn delete(
        &self,
        _: Request<task::DeleteRequest>,
    ) -> Result<Response<task::DeleteResponse>, Status> {
        unimplemented("Delete")
    }

    async fn pids(
        &self,
        _: Request<task::PidsRequest>,
    ) -> Result<Response<task::PidsResponse>, Status> {
        unimplemented("Pids")
    }

    async fn pause(&self, _: Request<task::PauseRequest>) -> Result<Response<()>, Status> {
        unimplemented("Pause")
    }

    async fn resume(&self, _: Request<task::ResumeRequest>) -> Result<Response<()>, Status> {
        unimplemented("Resume")
    }

    async fn checkpoint(
        &self,
        _: Request<task::CheckpointTaskRequest>,
    ) -> Result<Response<()>, Status> {
        unimplemented("Checkpoint")
    }

    async fn kill(&self, _: Request<task::KillRequest>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn exec(&self, _: Request<task::ExecProcessRequest>) -> Result<Response<()>, Status> {
        unimplemented("Exec")
    }

    async fn resize_pty(&self, _: Request<task::ResizePtyRequest>) -> Result<Response<()>, Status> {
        unimplemented("ResizePty")
    }

    async fn close_io(&self, _: Request<task::CloseIoRequest>) -> Result<Response<()>, Status> {
        unimplemented("CloseIO")
    }

    async fn update(&self, _: Request<task::UpdateTaskRequest>) -> Result<Response<()>, Status> {
        unimplemented("Update")
    }

    async fn wait(
        &self,
        request: Request<task::WaitRequest>,
    ) -> Result<Response<task::WaitResponse>, Status> {
        if request.get_ref().id == "slow" {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(Response::new(task::WaitResponse {
            exit_status: 7,
            exited_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
        }))
    }

    async fn stats(
        &self,
        _: Request<task::StatsRequest>,
    ) -> Result<Response<task::StatsResponse>, Status> {
        unimplemented("Stats")
    }

    async fn connect(
        &self,
        _: Request<task::ConnectRequest>,
    ) -> Result<Response<task::ConnectResponse>, Status> {
        Ok(Response::new(task::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: PID,
            version: "hull-test".into(),
        }))
    }

    async fn shutdown(&self, _: Request<task::ShutdownRequest>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}
