//! containerd's shim task API for hull's runtime v2 shim.
//!
//! The prost messages generated from `proto/` serve two transports:
//!
//! - ttrpc ([`ttrpc`]), which containerd uses to call shims and which shims use
//!   to publish events ([`events::Publisher`]);
//! - gRPC through tonic, for other clients and for containerd 2.x shims that
//!   report protocol "grpc" ([`grpc`]).
//!
//! Each service module contains the tonic server trait (for example
//! [`containerd::task::v3::task_server::Task`]), the tonic client, and a
//! `<service>_ttrpc` module whose `service()` function wraps the same trait
//! implementation as a ttrpc service. The module tree mirrors the protobuf
//! packages.
//!
//! A shim implements the v3 task trait once and serves it everywhere:
//!
//! ```no_run
//! # async fn example<T: hull_proto::containerd::task::v3::task_server::Task>(
//! #     task: std::sync::Arc<T>,
//! #     ttrpc_fd: std::os::fd::OwnedFd,
//! #     grpc_listener: tokio::net::UnixListener,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use hull_proto::containerd::task::{v2, v3};
//! use hull_proto::ttrpc;
//!
//! // ttrpc: v3 for containerd 2.x, and the same methods as v2 for 1.6 and
//! // 1.7, whose messages are identical.
//! let mut server = ttrpc::Server::new();
//! server.register(v3::task_ttrpc::service(task.clone()))?;
//! server.register(
//!     v3::task_ttrpc::service(task.clone()).with_name(v2::task_ttrpc::SERVICE_NAME),
//! )?;
//! tokio::spawn(server.serve(ttrpc::listener_from_fd(ttrpc_fd)?));
//!
//! // gRPC: containerd 2.x calls only v3 over gRPC.
//! tonic::transport::Server::builder()
//!     .add_service(v3::task_server::TaskServer::from_arc(task))
//!     .serve_with_incoming(hull_proto::grpc::unix_incoming(grpc_listener))
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod events;
pub mod grpc;
pub mod ttrpc;

/// Packages under `containerd.*`.
pub mod containerd {
    pub mod types {
        include!(concat!(env!("OUT_DIR"), "/containerd.types.rs"));
    }

    pub mod v1 {
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/containerd.v1.types.rs"));
        }
    }

    pub mod task {
        pub mod v2 {
            include!(concat!(env!("OUT_DIR"), "/containerd.task.v2.rs"));
        }

        pub mod v3 {
            include!(concat!(env!("OUT_DIR"), "/containerd.task.v3.rs"));
        }
    }

    pub mod events {
        include!(concat!(env!("OUT_DIR"), "/containerd.events.rs"));
    }

    pub mod services {
        pub mod events {
            pub mod ttrpc {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/containerd.services.events.ttrpc.v1.rs"
                    ));
                }
            }
        }
    }

    pub mod runc {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/containerd.runc.v1.rs"));
        }
    }

    pub mod runtime {
        pub mod bootstrap {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/containerd.runtime.bootstrap.v1.rs"
                ));
            }
        }
    }
}

/// containerd's cgroup statistics (`io.containerd.cgroups.v1` and `.v2`).
pub mod io {
    pub mod containerd {
        pub mod cgroups {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/io.containerd.cgroups.v1.rs"));
            }

            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/io.containerd.cgroups.v2.rs"));
            }
        }
    }
}

/// hull's own services.
pub mod hull {
    pub mod images {
        /// `hull.images.v1.Images`, served by hull-imaged.
        // PullResponse's oneof contains an Image next to a small progress
        // message, and a stream sends few of the large ones.
        #[allow(clippy::large_enum_variant)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hull.images.v1.rs"));
        }
    }
}

/// The Kubernetes CRI (`runtime.v1`), limited to `ImageService`.
pub mod runtime {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/runtime.v1.rs"));
    }
}

/// `google.rpc.Status`, the error model of gRPC and ttrpc responses.
pub mod google {
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

/// Encoded `FileDescriptorSet` of the containerd task, event and option
/// files and their imports, for the shim's gRPC server reflection.
pub const TASK_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/task_descriptor.bin"));

/// Encoded `FileDescriptorSet` of `hull.images.v1` and the CRI image service
/// and their imports, for hull-imaged's gRPC server reflection.
pub const IMAGES_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/images_descriptor.bin"));
