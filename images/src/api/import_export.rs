//! Import and export of OCI layouts, OCI archives and docker archives.

use hull_proto::hull::images::v1 as pb;
use tonic::Status;

use super::Daemon;

pub async fn import(_daemon: &Daemon, _request: pb::ImportRequest) -> Result<Vec<pb::Image>, Status> {
    Err(Status::unimplemented("import is not available yet"))
}

pub async fn export(_daemon: &Daemon, _request: pb::ExportRequest) -> Result<u64, Status> {
    Err(Status::unimplemented("export is not available yet"))
}
