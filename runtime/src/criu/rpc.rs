//! The messages of criu's RPC interface that hull sends and reads, written
//! by hand from `rpc.proto` of criu 3.17 (`/usr/include/criu/rpc.proto` on
//! Debian). Field numbers and types follow that file, so the encoding is
//! the one `criu swrk` expects. Fields hull never sets are left out, which
//! protobuf allows.

/// `criu_req_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    CpuinfoDump = 7,
    CpuinfoCheck = 8,
    FeatureCheck = 9,
    Version = 10,
    WaitPid = 11,
    PageServerChld = 12,
    SinglePreDump = 13,
}

impl ReqType {
    /// Returns the name criu prints for the request type.
    pub fn name(self) -> &'static str {
        match self {
            ReqType::Empty => "EMPTY",
            ReqType::Dump => "DUMP",
            ReqType::Restore => "RESTORE",
            ReqType::Check => "CHECK",
            ReqType::PreDump => "PRE_DUMP",
            ReqType::PageServer => "PAGE_SERVER",
            ReqType::Notify => "NOTIFY",
            ReqType::CpuinfoDump => "CPUINFO_DUMP",
            ReqType::CpuinfoCheck => "CPUINFO_CHECK",
            ReqType::FeatureCheck => "FEATURE_CHECK",
            ReqType::Version => "VERSION",
            ReqType::WaitPid => "WAIT_PID",
            ReqType::PageServerChld => "PAGE_SERVER_CHLD",
            ReqType::SinglePreDump => "SINGLE_PRE_DUMP",
        }
    }
}

/// `criu_cg_mode`: how criu handles the cgroups of the dumped tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

/// `criu_page_server_info`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub fd: Option<i32>,
}

/// `join_namespace`: a namespace the restored tree joins instead of
/// getting a new one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
    #[prost(string, optional, tag = "3")]
    pub extra_opt: Option<String>,
}

/// `inherit_fd`: a descriptor of `criu swrk` that replaces the resource
/// named `key` on restore.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

/// `cgroup_root`: the cgroup of controller `ctrl` that criu restores into.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

/// `criu_opts`, the subset hull sets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub ps: Option<PageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(enumeration = "CgMode", optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: Option<bool>,
    #[prost(int32, optional, tag = "49")]
    pub status_fd: Option<i32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
    #[prost(string, optional, tag = "53")]
    pub lsm_profile: Option<String>,
}

/// `criu_features`: the optional features that a `FEATURE_CHECK` queries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    pub lazy_pages: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub pidfd_store: Option<bool>,
}

/// `criu_req`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Req {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<Opts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub keep_open: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub features: Option<Features>,
    #[prost(uint32, optional, tag = "6")]
    pub pid: Option<u32>,
}

/// `criu_dump_resp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DumpResp {
    #[prost(bool, optional, tag = "1")]
    pub restored: Option<bool>,
}

/// `criu_restore_resp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

/// `criu_notify`: a step of the dump or restore that criu reports before
/// it goes on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Notify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

/// `criu_version`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub extra: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub name: Option<String>,
}

impl Version {
    /// Returns the version as one number, the form criu's own tools compare:
    /// `major * 10000 + minor * 100 + sublevel` (3.17.1 is 31701).
    pub fn number(&self) -> i32 {
        self.major_number * 10000 + self.minor_number * 100 + self.sublevel.unwrap_or(0)
    }
}

/// `criu_resp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resp {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "3")]
    pub dump: Option<DumpResp>,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<Notify>,
    #[prost(message, optional, tag = "6")]
    pub ps: Option<PageServerInfo>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: Option<Features>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<Version>,
    #[prost(int32, optional, tag = "11")]
    pub status: Option<i32>,
}
