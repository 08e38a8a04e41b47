//! The subcommands that call hull-imaged, and login/logout, which only
//! touch the registry and the credentials file.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use hull_images::registry::RegistryClient;
use hull_images::Reference;
use hull_proto::hull::images::v1 as pb;
use pb::images_client::ImagesClient;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::format::{human_age, human_size, repository_and_tag, short_id};
use crate::progress::Progress;
use crate::{GlobalArgs, OutputFormat, SaveFormat};

/// Turns a gRPC error into the one line hullctl prints.
fn rpc_error(status: tonic::Status) -> anyhow::Error {
    // A daemon that died mid-call surfaces as a transport error with no
    // useful message of its own.
    if status.code() == tonic::Code::Unknown && status.message().contains("h2 protocol error") {
        return anyhow!(
            "hull-imaged closed the connection during the call: see imaged.log in its root directory, then run the command again"
        );
    }
    anyhow!("{}", status.message())
}

/// Returns `n` and `noun`, with an "s" unless `n` is 1.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn timestamp_seconds(timestamp: Option<&prost_types::Timestamp>) -> Option<i64> {
    timestamp.map(|t| t.seconds).filter(|seconds| *seconds > 0)
}

fn rfc3339(timestamp: Option<&prost_types::Timestamp>) -> Value {
    match timestamp {
        Some(t) => chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(|time| Value::String(time.to_rfc3339()))
            .unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// Parses JSON bytes for output, keeping invalid JSON as a string.
fn json_bytes(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn descriptor_json(descriptor: &pb::Descriptor) -> Value {
    let mut value = json!({
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    });
    if !descriptor.annotations.is_empty() {
        value["annotations"] = json!(descriptor.annotations);
    }
    if let Some(platform) = &descriptor.platform {
        let mut platform_json = json!({
            "os": platform.os,
            "architecture": platform.architecture,
        });
        if !platform.variant.is_empty() {
            platform_json["variant"] = json!(platform.variant);
        }
        value["platform"] = platform_json;
    }
    value
}

fn image_json(image: &pb::Image) -> Value {
    let (repository, tag) = repository_and_tag(&image.name);
    json!({
        "name": image.name,
        "repository": repository,
        "tag": tag,
        "id": image.id,
        "digest": image.target.as_ref().map(|target| target.digest.clone()),
        "mediaType": image.target.as_ref().map(|target| target.media_type.clone()),
        "size": image.size,
        "created": rfc3339(image.config_created.as_ref().or(image.created.as_ref())),
    })
}

/// Returns `path` made absolute against the working directory, because the
/// daemon resolves paths from its own.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
}

pub struct Client {
    images: ImagesClient<Channel>,
    registry: RegistryClient,
}

impl Client {
    pub fn new(channel: Channel, registry: RegistryClient) -> Self {
        Self {
            images: ImagesClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
            registry,
        }
    }

    /// Returns the credentials that hullctl's config.json holds for the
    /// registry of `reference`. They travel with the request, as docker's
    /// do, so a `hullctl login` reaches a daemon that started earlier or
    /// with another config file.
    async fn auth_for(&self, reference: &str) -> anyhow::Result<Option<pb::RegistryAuth>> {
        let Ok(reference) = reference.parse::<Reference>() else {
            // The daemon reports the invalid reference.
            return Ok(None);
        };
        let registry = reference.registry();
        let credentials = self
            .registry
            .credentials(registry)
            .await
            .with_context(|| format!("failed to read the credentials for {registry}"))?;
        Ok(credentials.map(|credentials| pb::RegistryAuth {
            username: credentials.username,
            password: credentials.password,
            ..Default::default()
        }))
    }

    pub async fn pull(
        mut self,
        reference: &str,
        quiet: bool,
        platform: Option<&str>,
    ) -> anyhow::Result<ExitCode> {
        let image = self.pull_image(reference, quiet, platform).await?;
        if quiet {
            println!("{}", image.id);
        } else {
            let digest = image.target.map(|target| target.digest).unwrap_or_default();
            println!("Digest: {digest}");
            println!("{}", image.name);
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Pulls `reference`, drawing progress on the terminal unless `quiet`,
    /// and returns the stored image.
    pub async fn pull_image(
        &mut self,
        reference: &str,
        quiet: bool,
        platform: Option<&str>,
    ) -> anyhow::Result<pb::Image> {
        let platform = platform.map(parse_platform).transpose()?;
        let request = pb::PullRequest {
            reference: reference.to_string(),
            platform,
            auth: self.auth_for(reference).await?,
        };
        let mut stream = self
            .images
            .pull(request)
            .await
            .map_err(rpc_error)?
            .into_inner();
        let mut progress = Progress::new(quiet);
        let mut pulled = None;
        while let Some(message) = stream.message().await.map_err(|status| {
            progress.finish();
            rpc_error(status)
        })? {
            match message.event {
                Some(pb::pull_response::Event::Progress(event)) => progress.update(&event),
                Some(pb::pull_response::Event::Image(image)) => pulled = Some(image),
                None => {}
            }
        }
        progress.finish();
        pulled.ok_or_else(|| anyhow!("the pull of {reference} ended without an image"))
    }

    pub async fn push(
        mut self,
        image: &str,
        destination: Option<&str>,
        quiet: bool,
    ) -> anyhow::Result<ExitCode> {
        let request = pb::PushRequest {
            image: image.to_string(),
            destination: destination.unwrap_or_default().to_string(),
            auth: self.auth_for(destination.unwrap_or(image)).await?,
        };
        let stream = self
            .images
            .push(request)
            .await
            .map_err(rpc_error)?
            .into_inner();
        let digest = follow_push(stream, quiet).await?;
        if quiet {
            println!("{digest}");
        } else {
            println!("Digest: {digest}");
        }
        Ok(ExitCode::SUCCESS)
    }

    pub async fn copy(
        mut self,
        source: &str,
        destination: &str,
        quiet: bool,
    ) -> anyhow::Result<ExitCode> {
        let request = pb::CopyRequest {
            source: source.to_string(),
            destination: destination.to_string(),
            source_auth: self.auth_for(source).await?,
            destination_auth: self.auth_for(destination).await?,
        };
        let stream = self
            .images
            .copy(request)
            .await
            .map_err(rpc_error)?
            .into_inner();
        let digest = follow_push(stream, quiet).await?;
        if quiet {
            println!("{digest}");
        } else {
            println!("Copied {source} to {destination}");
            println!("Digest: {digest}");
        }
        Ok(ExitCode::SUCCESS)
    }

    pub async fn images(
        mut self,
        filter: Option<&str>,
        quiet: bool,
        digests: bool,
        format: OutputFormat,
    ) -> anyhow::Result<ExitCode> {
        let request = pb::ListRequest {
            filter: filter.unwrap_or_default().to_string(),
        };
        let images = self
            .images
            .list(request)
            .await
            .map_err(rpc_error)?
            .into_inner()
            .images;

        if quiet {
            let mut seen = std::collections::HashSet::new();
            for image in &images {
                let id = short_id(&image.id);
                if seen.insert(id.clone()) {
                    println!("{id}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        if format == OutputFormat::Json {
            let list: Vec<Value> = images.iter().map(image_json).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(ExitCode::SUCCESS);
        }

        let mut rows = vec![];
        for image in &images {
            let (repository, tag) = repository_and_tag(&image.name);
            let created = timestamp_seconds(image.config_created.as_ref())
                .or_else(|| timestamp_seconds(image.created.as_ref()))
                .map(human_age)
                .unwrap_or_else(|| String::from("N/A"));
            let mut row = vec![repository, tag];
            if digests {
                let digest = image.target.as_ref().map(|target| target.digest.clone());
                row.push(digest.unwrap_or_default());
            }
            row.push(short_id(&image.id));
            row.push(created);
            row.push(human_size(image.size.max(0) as u64));
            rows.push(row);
        }
        let mut header = vec!["REPOSITORY", "TAG"];
        if digests {
            header.push("DIGEST");
        }
        header.extend(["IMAGE ID", "CREATED", "SIZE"]);
        print_table(&header, &rows);
        Ok(ExitCode::SUCCESS)
    }

    pub async fn rmi(mut self, images: &[String], force: bool) -> anyhow::Result<ExitCode> {
        let mut failed = false;
        for image in images {
            let request = pb::RemoveRequest {
                image: image.clone(),
                force,
            };
            match self.images.remove(request).await {
                Ok(response) => {
                    for name in response.into_inner().removed {
                        println!("Untagged: {name}");
                    }
                }
                Err(status) => {
                    eprintln!("hullctl: {}", rpc_error(status));
                    failed = true;
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    pub async fn tag(mut self, source: &str, target: &str) -> anyhow::Result<ExitCode> {
        let request = pb::TagRequest {
            source: source.to_string(),
            target: target.to_string(),
        };
        self.images.tag(request).await.map_err(rpc_error)?;
        Ok(ExitCode::SUCCESS)
    }

    pub async fn inspect(mut self, image: &str, remote: bool) -> anyhow::Result<ExitCode> {
        let value = if remote {
            let request = pb::InspectRemoteRequest {
                reference: image.to_string(),
                auth: self.auth_for(image).await?,
                platform: None,
            };
            let response = self
                .images
                .inspect_remote(request)
                .await
                .map_err(rpc_error)?
                .into_inner();
            let descriptor = response.descriptor.as_ref().map(descriptor_json);
            json!({
                "name": image,
                "descriptor": descriptor,
                "digest": response.descriptor.as_ref().map(|d| d.digest.clone()),
                "mediaType": response.descriptor.as_ref().map(|d| d.media_type.clone()),
                "manifests": response.manifests.iter().map(descriptor_json).collect::<Vec<_>>(),
                "manifest": json_bytes(&response.manifest_raw),
                "config": json_bytes(&response.config),
            })
        } else {
            let request = pb::InspectRequest {
                image: image.to_string(),
            };
            let response = self
                .images
                .inspect(request)
                .await
                .map_err(rpc_error)?
                .into_inner();
            let mut value = response
                .image
                .as_ref()
                .map(image_json)
                .unwrap_or(Value::Null);
            value["layers"] = json!(response
                .layers
                .iter()
                .map(descriptor_json)
                .collect::<Vec<_>>());
            value["diffIds"] = json!(response.diff_ids);
            value["index"] = json_bytes(&response.index);
            value["manifest"] = json_bytes(&response.manifest);
            value["config"] = json_bytes(&response.config);
            value
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(ExitCode::SUCCESS)
    }

    pub async fn save(
        mut self,
        images: &[String],
        output: &Path,
        format: SaveFormat,
    ) -> anyhow::Result<ExitCode> {
        let format = match format {
            SaveFormat::OciArchive => pb::ArchiveFormat::OciArchive,
            SaveFormat::DockerArchive => pb::ArchiveFormat::DockerArchive,
            SaveFormat::OciDir => pb::ArchiveFormat::OciLayout,
        };
        let request = pb::ExportRequest {
            path: absolute(output)?.to_string_lossy().into_owned(),
            format: format as i32,
            images: images.to_vec(),
        };
        self.images.export(request).await.map_err(rpc_error)?;
        Ok(ExitCode::SUCCESS)
    }

    pub async fn load(mut self, input: &Path, name: Option<&str>) -> anyhow::Result<ExitCode> {
        let request = pb::ImportRequest {
            path: absolute(input)?.to_string_lossy().into_owned(),
            format: pb::ArchiveFormat::Unspecified as i32,
            name: name.unwrap_or_default().to_string(),
        };
        let response = self
            .images
            .import(request)
            .await
            .map_err(rpc_error)?
            .into_inner();
        for image in response.images {
            println!("Loaded image: {}", image.name);
        }
        Ok(ExitCode::SUCCESS)
    }

    pub async fn gc(mut self) -> anyhow::Result<ExitCode> {
        let report = self
            .images
            .garbage_collect(pb::GarbageCollectRequest {})
            .await
            .map_err(rpc_error)?
            .into_inner();
        println!(
            "Removed {}, {}, freed {}",
            count(report.removed_blobs, "blob"),
            count(report.removed_snapshots, "snapshot"),
            human_size(report.freed_bytes)
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn check(mut self) -> anyhow::Result<ExitCode> {
        let report = self
            .images
            .check(pb::CheckRequest {})
            .await
            .map_err(rpc_error)?
            .into_inner();
        for problem in &report.problems {
            println!("{}: {}: {}", problem.kind, problem.subject, problem.detail);
        }
        if report.problems.is_empty() {
            println!("Checked {} blobs: no problems", report.checked_blobs);
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "hullctl: check found {} problems in {} blobs",
                report.problems.len(),
                report.checked_blobs
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Shows the progress of a push or copy and returns the final digest.
async fn follow_push(
    mut stream: tonic::Streaming<pb::PushResponse>,
    quiet: bool,
) -> anyhow::Result<String> {
    let mut progress = Progress::new(quiet);
    let mut digest = None;
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(status) => {
                progress.finish();
                return Err(rpc_error(status));
            }
        };
        match message.event {
            Some(pb::push_response::Event::Progress(event)) => progress.update(&event),
            Some(pb::push_response::Event::Digest(pushed)) => digest = Some(pushed),
            None => {}
        }
    }
    progress.finish();
    digest.ok_or_else(|| anyhow!("the daemon ended the stream without a digest"))
}

/// Parses `os/arch[/variant]`.
fn parse_platform(text: &str) -> anyhow::Result<pb::Platform> {
    let parts: Vec<&str> = text.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|part| part.is_empty()) {
        bail!("invalid platform {text:?}: expected os/arch or os/arch/variant");
    }
    Ok(pb::Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).unwrap_or(&"").to_string(),
        ..Default::default()
    })
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Checks the credentials with the registry, then stores them.
pub async fn login(
    global: &GlobalArgs,
    registry: &str,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    let username = match username {
        Some(username) => username,
        None => bail!("a username is required: pass -u USERNAME"),
    };
    let password = match (password, password_stdin) {
        (Some(password), _) => password,
        (None, true) => read_password_line()?,
        (None, false) if !std::io::stdin().is_terminal() => read_password_line()?,
        (None, false) => bail!("a password is required: pass -p PASSWORD or --password-stdin"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    crate::registry_auth::login(global, registry, &username, &password).await?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn logout(global: &GlobalArgs, registry: &str) -> anyhow::Result<ExitCode> {
    let removed = crate::registry_auth::logout(global, registry).await?;
    if removed {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
