//! Placeholder of the CNI network module; replaced by the real module.
#![allow(dead_code, unused_variables)]

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub netns: PathBuf,
}

pub struct SetupRequest {
    pub container_id: String,
    pub name: String,
    pub hostname: String,
    pub networks: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub hosts_file: PathBuf,
}

pub struct Networks {}

impl Networks {
    pub fn new(paths: &crate::paths::Paths) -> Networks {
        Networks {}
    }
    pub fn ensure_default(&self) -> anyhow::Result<()> {
        anyhow::bail!("networks are not built")
    }
    pub fn setup(&self, request: &SetupRequest) -> anyhow::Result<Attachment> {
        if request.networks.is_empty() {
            return Ok(Attachment {
                netns: PathBuf::new(),
            });
        }
        anyhow::bail!("networks are not built")
    }
    pub fn teardown(&self, container_id: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

pub fn parse_publish(value: &str) -> anyhow::Result<Vec<PortMapping>> {
    anyhow::bail!("ports are not built")
}
