//! `hull list`: the containers under `--root`, as a table or JSON.

use std::fs;

use super::{Format, Global};
use crate::container::{Container, OciState};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format: table or json
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print only the container ids
    #[arg(short, long)]
    pub quiet: bool,
}

/// Loads every container under `root`. Ids without a record (a create in
/// progress, or one that failed midway) are skipped.
fn containers(global: &Global) -> Result<Vec<OciState>> {
    let entries = match fs::read_dir(&global.root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Error::Spec(format!(
                "--root {} is not a directory: give --root the containers' state directory",
                global.root.display()
            )))
        }
        Err(e) => return Err(Error::io(format!("read {}", global.root.display()), e)),
    };
    let mut list = vec![];
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str() else { continue };
        match Container::load(&global.root, id) {
            Ok(container) => list.push(container.oci_state()),
            Err(Error::NotExist(_) | Error::InvalidId { .. }) => {}
            Err(e) => tracing::warn!("skip {id}: {e}"),
        }
    }
    list.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(list)
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let list = containers(global)?;
    if args.quiet {
        for state in &list {
            println!("{}", state.id);
        }
        return Ok(0);
    }
    match args.format {
        Format::Json => {
            let text = if list.is_empty() {
                // runc prints null for an empty list.
                "null".to_string()
            } else {
                serde_json::to_string(&list)
                    .map_err(|e| Error::Message(format!("encode container list: {e}")))?
            };
            println!("{text}");
        }
        Format::Table => print!("{}", table(&list)),
    }
    Ok(0)
}

/// Lays out the table as runc's tabwriter does: columns at least 12 wide,
/// with 3 spaces between them.
fn table(list: &[OciState]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for state in list {
        rows.push([
            state.id.clone(),
            state.pid.to_string(),
            state.status.as_str().to_string(),
            state.bundle.display().to_string(),
            state.created.clone(),
            state.owner.clone(),
        ]);
    }
    let mut widths = [12usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len() + 3);
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_is_runc_header() {
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
    }
}
