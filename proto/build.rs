//! Compiles `proto/**/*.proto` with protox (no system protoc) and generates
//! prost messages, tonic clients and servers for every service, and ttrpc
//! glue for the containerd services.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost_build::{Method, Service, ServiceGenerator};

const PROTO_ROOT: &str = "proto";

const PROTO_FILES: &[&str] = &[
    "google/rpc/status.proto",
    "ttrpc/request.proto",
    "types/mount.proto",
    "types/metrics.proto",
    "types/platform.proto",
    "types/event.proto",
    "types/task/task.proto",
    "runtime/task/v2/shim.proto",
    "runtime/task/v3/shim.proto",
    "runtime/bootstrap/v1/bootstrap.proto",
    "events/task.proto",
    "services/ttrpc/events/v1/events.proto",
    "runc/options/oci.proto",
    "cgroups/v1/metrics.proto",
    "cgroups/v2/metrics.proto",
    "hull/images/v1/images.proto",
    "cri/runtime/v1/api.proto",
];

/// Files of the image service (hull-imaged), which the shim does not serve.
const IMAGE_FILES: &[&str] = &["hull/images/v1/images.proto", "cri/runtime/v1/api.proto"];

/// Packages served only over gRPC, which get no ttrpc glue.
const GRPC_ONLY_PACKAGES: &[&str] = &["hull.images.v1", "runtime.v1"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let files: Vec<PathBuf> = PROTO_FILES
        .iter()
        .map(|file| Path::new(PROTO_ROOT).join(file))
        .collect();
    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // tonic-reflection serves these sets, so they include the imported
    // google.protobuf files but no source info. The shim and hull-imaged
    // each list only the services they serve.
    let (images_files, task_files): (Vec<PathBuf>, Vec<PathBuf>) =
        files.iter().cloned().partition(|file| {
            IMAGE_FILES
                .iter()
                .any(|image| file.ends_with(Path::new(image)))
        });
    for (name, files) in [
        ("task_descriptor.bin", &task_files),
        ("images_descriptor.bin", &images_files),
    ] {
        let mut reflection = protox::Compiler::new([PROTO_ROOT])?;
        reflection.include_imports(true).include_source_info(false);
        reflection.open_files(files)?;
        std::fs::write(out_dir.join(name), reflection.encode_file_descriptor_set())?;
    }

    let tonic = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The transport constructor `connect` collides with the Task
        // service's Connect method, so clients are built with `new(channel)`.
        .build_transport(false)
        .service_generator();

    let mut config = prost_build::Config::new();
    config
        .enable_type_names()
        .service_generator(Box::new(CombinedGenerator { tonic }));
    config.compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// Appends ttrpc glue for a containerd service and then runs the tonic
/// generator for it.
struct CombinedGenerator {
    tonic: Box<dyn ServiceGenerator>,
}

impl ServiceGenerator for CombinedGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        if !GRPC_ONLY_PACKAGES.contains(&service.package.as_str()) {
            generate_ttrpc(&service, buf);
        }
        self.tonic.generate(service, buf);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic.finalize_package(package, buf);
    }
}

/// Makes a type path from the package module valid one module deeper.
fn nested_type_path(path: &str) -> String {
    // prost maps google.protobuf.Empty to `()`.
    if path == "()" || path.starts_with("::") || path.starts_with("crate::") {
        path.to_owned()
    } else {
        format!("super::{path}")
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Emits `<service>_ttrpc`: a function that wraps the tonic server trait in a
/// `crate::ttrpc::Service`, and a typed ttrpc client.
fn generate_ttrpc(service: &Service, buf: &mut String) {
    let module = format!("{}_ttrpc", snake_case(&service.name));
    let server_module = format!("{}_server", snake_case(&service.name));
    let full_name = format!("{}.{}", service.package, service.proto_name);
    let trait_name = &service.name;

    let mut out = String::new();
    writeln!(out, "/// ttrpc server and client for `{full_name}`.").unwrap();
    writeln!(out, "///").unwrap();
    writeln!(
        out,
        "/// Both use the prost messages of this package, and the server calls the \
         [`{server_module}::{trait_name}`] trait, \
         so one implementation serves ttrpc and gRPC."
    )
    .unwrap();
    writeln!(out, "pub mod {module} {{").unwrap();
    writeln!(out, "    /// Service name on the wire.").unwrap();
    writeln!(out, "    pub const SERVICE_NAME: &str = \"{full_name}\";").unwrap();
    writeln!(out).unwrap();
    write_service_fn(&mut out, service, &server_module);
    write_client(&mut out, service);
    writeln!(out, "}}").unwrap();
    buf.push_str(&out);
}

fn write_service_fn(out: &mut String, service: &Service, server_module: &str) {
    let trait_path = format!("super::{server_module}::{}", service.name);
    writeln!(
        out,
        "    /// Builds a ttrpc service that forwards each method to `implementation`."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn service<T: {trait_path}>(implementation: ::std::sync::Arc<T>) -> crate::ttrpc::Service {{"
    )
    .unwrap();
    writeln!(
        out,
        "        #[allow(unused_mut)]\n        let mut service = crate::ttrpc::Service::new(SERVICE_NAME);"
    )
    .unwrap();
    for method in &service.methods {
        if method.client_streaming || method.server_streaming {
            writeln!(
                out,
                "        // {} streams, which the ttrpc transport does not support yet.",
                method.proto_name
            )
            .unwrap();
            continue;
        }
        write_method_registration(out, &trait_path, method);
    }
    writeln!(out, "        service\n    }}\n").unwrap();
}

fn write_method_registration(out: &mut String, trait_path: &str, method: &Method) {
    let input = nested_type_path(&method.input_type);
    writeln!(out, "        {{").unwrap();
    writeln!(
        out,
        "            let implementation = ::std::sync::Arc::clone(&implementation);"
    )
    .unwrap();
    writeln!(
        out,
        "            service.add_tonic_method(\"{}\", move |request: ::tonic::Request<{input}>| {{",
        method.proto_name
    )
    .unwrap();
    writeln!(
        out,
        "                let implementation = ::std::sync::Arc::clone(&implementation);"
    )
    .unwrap();
    writeln!(
        out,
        "                async move {{ <T as {trait_path}>::{}(&implementation, request).await }}",
        method.name
    )
    .unwrap();
    writeln!(out, "            }});\n        }}").unwrap();
}

fn write_client(out: &mut String, service: &Service) {
    let client = format!("{}Client", service.name);
    writeln!(
        out,
        "    /// Typed client of `{}.{}` over a ttrpc connection.",
        service.package, service.proto_name
    )
    .unwrap();
    writeln!(out, "    #[derive(Clone, Debug)]").unwrap();
    writeln!(
        out,
        "    pub struct {client} {{\n        client: crate::ttrpc::Client,\n    }}\n"
    )
    .unwrap();
    writeln!(out, "    impl {client} {{").unwrap();
    writeln!(
        out,
        "        pub fn new(client: crate::ttrpc::Client) -> Self {{\n            Self {{ client }}\n        }}\n"
    )
    .unwrap();
    for method in &service.methods {
        if method.client_streaming || method.server_streaming {
            continue;
        }
        let input = nested_type_path(&method.input_type);
        let output = nested_type_path(&method.output_type);
        writeln!(
            out,
            "        /// Calls `{}` and waits for its response.",
            method.proto_name
        )
        .unwrap();
        writeln!(
            out,
            "        pub async fn {}(&self, request: &{input}, options: &crate::ttrpc::CallOptions) \
             -> ::std::result::Result<{output}, crate::ttrpc::Status> {{",
            method.name
        )
        .unwrap();
        writeln!(
            out,
            "            self.client.unary(SERVICE_NAME, \"{}\", request, options).await\n        }}\n",
            method.proto_name
        )
        .unwrap();
    }
    writeln!(out, "    }}").unwrap();
}
