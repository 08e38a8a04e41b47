//! `top`: the processes of a running container, in the columns of
//! `ps -ef` that docker prints by default.
//!
//! The shim's Pids call returns the host pids of the container's
//! processes. Everything else comes from `/proc/<pid>` on the host, so the
//! user names are the host's, as in docker.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::anyhow;
use chrono::{DateTime, Local, TimeZone};
use hull_proto::containerd::task::v3::PidsRequest;

use super::record::State;
use super::shim::{self, Shim};
use super::{lifecycle, Context};

/// Column headers of `ps -ef`.
const HEADERS: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// The fields of `/proc/<pid>/stat` that `top` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub tty_nr: u64,
    /// User and system CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
}

/// `top CONTAINER`. `ps_options` are accepted for docker's syntax and
/// ignored with a warning.
pub async fn top(ctx: &Context, name: &str, ps_options: &[String]) -> anyhow::Result<ExitCode> {
    if !ps_options.is_empty() {
        eprintln!(
            "hullctl: ps options are not supported, printing the default columns instead of {:?}",
            ps_options.join(" ")
        );
    }
    let record = ctx.store.find(name)?;
    let not_running = || anyhow!("container {} is not running", record.name);
    let (state, _) = lifecycle::live_state(&record).await;
    if !matches!(state, State::Running | State::Paused) {
        return Err(not_running());
    }
    let shim_record = record.shim.as_ref().ok_or_else(not_running)?;
    let shim = Shim::try_connect(&record.id, shim_record)
        .await
        .ok_or_else(not_running)?;
    let response = shim
        .client()
        .pids(PidsRequest {
            id: record.id.clone(),
        })
        .await
        .map_err(|status| shim::task_error("list the processes of", &record.name, status))?;
    let mut pids: Vec<u32> = response
        .into_inner()
        .processes
        .iter()
        .map(|process| process.pid)
        .collect();
    pids.sort_unstable();

    let host = HostClock::read()?;
    let users = std::fs::read_to_string("/etc/passwd")
        .map(|text| user_names(&text))
        .unwrap_or_default();
    let mut rows = Vec::new();
    for pid in pids {
        // A process that exits after the Pids call is left out.
        if let Some(row) = process_row(pid, &host, &users) {
            rows.push(row);
        }
    }
    print!("{}", render_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// The host's clock tick rate, boot time and uptime, which the columns
/// are computed from.
struct HostClock {
    ticks_per_second: u64,
    boot_time: i64,
    uptime_seconds: f64,
}

impl HostClock {
    fn read() -> anyhow::Result<HostClock> {
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100) as u64;
        let stat = std::fs::read_to_string("/proc/stat")
            .map_err(|err| anyhow!("failed to read /proc/stat: {err}"))?;
        let boot_time = stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| anyhow!("invalid /proc/stat: it has no btime line"))?;
        let uptime = std::fs::read_to_string("/proc/uptime")
            .map_err(|err| anyhow!("failed to read /proc/uptime: {err}"))?;
        let uptime_seconds = uptime
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| anyhow!("invalid /proc/uptime: {uptime:?}"))?;
        Ok(HostClock {
            ticks_per_second,
            boot_time,
            uptime_seconds,
        })
    }
}

/// Reads the row of process `pid`, or None when it has exited.
fn process_row(pid: u32, host: &HostClock, users: &HashMap<u32, String>) -> Option<[String; 8]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let stat = parse_stat(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let uid = effective_uid(&status)?;
    let user = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
    let ticks = host.ticks_per_second;
    let cpu_seconds = (stat.utime + stat.stime) / ticks;
    let started_after_boot = stat.start_time as f64 / ticks as f64;
    let elapsed = host.uptime_seconds - started_after_boot;
    let start = Local
        .timestamp_opt(host.boot_time + started_after_boot as i64, 0)
        .single()?;
    Some([
        user,
        stat.pid.to_string(),
        stat.ppid.to_string(),
        cpu_percent(stat.utime + stat.stime, ticks, elapsed).to_string(),
        format_start_time(start, Local::now()),
        tty_name(stat.tty_nr),
        format_cpu_time(cpu_seconds),
        command_line(&cmdline, &stat),
    ])
}

/// Parses `/proc/<pid>/stat`. The command name sits in parentheses and may
/// itself contain spaces and parentheses, so the fields after it are found
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // The fields after the name are numbered from 3 in proc(5).
    let field = |number: usize| fields.get(number - 3).copied();
    Some(ProcStat {
        pid,
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        tty_nr: field(7)?.parse::<i64>().ok()? as u64,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Returns the effective uid from `/proc/<pid>/status`, the user that
/// `ps -f` shows.
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Maps uids to names from the text of an `/etc/passwd`, keeping the first
/// name of a uid as the C library's lookup does.
pub fn user_names(passwd: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 || fields[0].is_empty() || fields[0].starts_with('#') {
            continue;
        }
        if let Ok(uid) = fields[2].parse() {
            names.entry(uid).or_insert_with(|| fields[0].to_owned());
        }
    }
    names
}

/// Computes the C column: CPU time as a whole percentage of the time since the
/// process started, capped at 99 as procps does.
pub fn cpu_percent(cpu_ticks: u64, ticks_per_second: u64, elapsed_seconds: f64) -> u64 {
    if elapsed_seconds <= 0.0 || ticks_per_second == 0 {
        return 0;
    }
    let cpu_seconds = cpu_ticks as f64 / ticks_per_second as f64;
    ((cpu_seconds * 100.0 / elapsed_seconds) as u64).min(99)
}

/// Formats the STIME column: `HH:MM` for a process started in the last 24 hours,
/// `MonDD` within a year, the year before that.
pub fn format_start_time<Tz: TimeZone>(start: DateTime<Tz>, now: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let age = now.signed_duration_since(&start).num_seconds();
    if age < 24 * 3600 {
        start.format("%H:%M").to_string()
    } else if age < 365 * 24 * 3600 {
        start.format("%b%d").to_string()
    } else {
        start.format("%Y").to_string()
    }
}

/// Formats the TIME column: CPU seconds as `[DD-]HH:MM:SS`.
pub fn format_cpu_time(seconds: u64) -> String {
    let days = seconds / 86_400;
    let hours = seconds / 3600 % 24;
    let minutes = seconds / 60 % 60;
    let seconds = seconds % 60;
    if days > 0 {
        format!("{days}-{hours:02}:{minutes:02}:{seconds:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    }
}

/// Formats the TTY column from the encoded device number of the controlling
/// terminal: `?` for none.
pub fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return String::from("?");
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xf_ff00);
    match major {
        // Unix98 pseudo-terminals use majors 136 to 143, 256 minors each.
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 1 => String::from("console"),
        _ => format!("{major}:{minor}"),
    }
}

/// Formats the CMD column: the arguments, or the name in brackets for a process
/// without any (a kernel thread or a zombie).
pub fn command_line(cmdline: &[u8], stat: &ProcStat) -> String {
    let args: Vec<String> = cmdline
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    if !args.is_empty() {
        return args.join(" ");
    }
    if stat.state == 'Z' {
        format!("[{}] <defunct>", stat.comm)
    } else {
        format!("[{}]", stat.comm)
    }
}

/// Lays out the rows as docker's `top` does: each column but the last is
/// padded to its widest cell plus 3 spaces, and to at least 20.
pub fn render_table(rows: &[[String; 8]]) -> String {
    let mut widths = HEADERS.map(|header| header.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let headers = HEADERS.map(str::to_owned);
    for row in std::iter::once(&headers).chain(rows) {
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                text.push_str(cell);
            } else {
                let width = (widths[index] + 3).max(20);
                text.push_str(&format!("{cell:<width$}"));
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn stat_with_parentheses_in_name() {
        let text = "42 (my (odd) name) S 7 42 42 34817 42 4194560 100 0 0 0 250 130 0 0 20 0 1 0 9000 1000 10 18446744073709551615";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(stat.pid, 42);
        assert_eq!(stat.comm, "my (odd) name");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.tty_nr, 34817);
        assert_eq!(stat.utime, 250);
        assert_eq!(stat.stime, 130);
        assert_eq!(stat.start_time, 9000);
    }

    #[test]
    fn stat_truncated_is_none() {
        assert_eq!(parse_stat("42 (sh) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn effective_uid_is_second() {
        let status = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\tsh\n"), None);
    }

    #[test]
    fn passwd_first_name_wins() {
        let names = user_names("root:x:0:0:root:/root:/bin/sh\n# comment\ntoor:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbroken\n");
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn cpu_time_formats() {
        assert_eq!(format_cpu_time(0), "00:00:00");
        assert_eq!(format_cpu_time(3661), "01:01:01");
        assert_eq!(format_cpu_time(86_400 + 59), "1-00:00:59");
    }

    #[test]
    fn start_time_by_age() {
        let now = Utc.with_ymd_and_hms(2024, 5, 10, 12, 0, 0).unwrap();
        let today = Utc.with_ymd_and_hms(2024, 5, 10, 9, 7, 0).unwrap();
        let earlier = Utc.with_ymd_and_hms(2024, 3, 2, 9, 7, 0).unwrap();
        let old = Utc.with_ymd_and_hms(2022, 3, 2, 9, 7, 0).unwrap();
        assert_eq!(format_start_time(today, now), "09:07");
        assert_eq!(format_start_time(earlier, now), "Mar02");
        assert_eq!(format_start_time(old, now), "2022");
    }

    #[test]
    fn cpu_percent_caps_at_99() {
        assert_eq!(cpu_percent(50, 100, 10.0), 5);
        assert_eq!(cpu_percent(5000, 100, 10.0), 99);
        assert_eq!(cpu_percent(10, 100, 0.0), 0);
    }

    #[test]
    fn tty_names() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(34817), "pts/1");
        assert_eq!(tty_name((4 << 8) | 2), "tty2");
        assert_eq!(tty_name((4 << 8) | 65), "ttyS1");
    }

    #[test]
    fn command_line_falls_back_to_name() {
        let stat = parse_stat("9 (sleep) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0").unwrap();
        assert_eq!(command_line(b"sleep\x00100\x00", &stat), "sleep 100");
        assert_eq!(command_line(b"", &stat), "[sleep] <defunct>");
    }

    #[test]
    fn table_pads_to_twenty() {
        let row = ["root", "1", "0", "0", "09:07", "?", "00:00:00", "sleep 100"].map(str::to_owned);
        let text = render_table(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&format!("{:<20}{:<20}", "UID", "PID")));
        assert!(lines[1].starts_with(&format!("{:<20}{:<20}", "root", "1")));
        assert!(
            lines[1].ends_with("00:00:00            sleep 100"),
            "{}",
            lines[1]
        );
    }
}
