//! The files of one log (`<log>.N` ... `<log>.1`, `<log>`) and reading
//! their lines forward and backward.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::writer::rotated_path;

/// Size of each read of a log file.
const READ_SIZE: usize = 64 * 1024;

/// Length past which a line without a newline is not a record. A record
/// contains at most 16 KiB of output, which JSON escapes to at most 96 KiB.
const MAX_LINE: usize = 1024 * 1024;

/// Device and inode of a file, which stay with it through renames.
pub type FileId = (u64, u64);

pub fn file_id(metadata: &std::fs::Metadata) -> FileId {
    (metadata.dev(), metadata.ino())
}

/// An open file of a log and how far it has been read.
pub struct Segment {
    pub file: File,
    pub id: FileId,
    /// Offset of the first byte not read yet, always the start of a line.
    pub offset: u64,
}

impl Segment {
    /// Opens `path`, or returns `None` when it does not exist.
    pub fn open(path: &Path) -> std::io::Result<Option<Segment>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let id = file_id(&file.metadata()?);
        Ok(Some(Segment {
            file,
            id,
            offset: 0,
        }))
    }

    /// Calls `each` with the offset and bytes (without the newline) of every
    /// complete line from the read offset to the end of the file, and moves
    /// the offset past them. An unfinished last line stays unread until its
    /// newline arrives. A line longer than [`MAX_LINE`] is passed cut short,
    /// so that it counts as an invalid record.
    pub fn read_lines(
        &mut self,
        buffer: &mut Vec<u8>,
        mut each: impl FnMut(FileId, u64, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        buffer.resize(READ_SIZE, 0);
        let mut filled = 0;
        loop {
            let n = self
                .file
                .read_at(&mut buffer[filled..], self.offset + filled as u64)?;
            if n == 0 {
                return Ok(());
            }
            filled += n;
            let mut start = 0;
            while let Some(newline) = buffer[start..filled].iter().position(|&b| b == b'\n') {
                each(self.id, self.offset, &buffer[start..start + newline])?;
                start += newline + 1;
                self.offset += newline as u64 + 1;
            }
            if start == 0 && filled == buffer.len() {
                if filled >= MAX_LINE {
                    // Skip the rest of the oversized line.
                    each(self.id, self.offset, &buffer[..64])?;
                    self.skip_line(buffer)?;
                    filled = 0;
                    continue;
                }
                buffer.resize(buffer.len() * 2, 0);
            }
            buffer.copy_within(start..filled, 0);
            filled -= start;
        }
    }

    /// Moves the offset past the next newline, or to the end of the file.
    fn skip_line(&mut self, buffer: &mut [u8]) -> std::io::Result<()> {
        loop {
            let n = self.file.read_at(buffer, self.offset)?;
            if n == 0 {
                return Ok(());
            }
            match buffer[..n].iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    self.offset += newline as u64 + 1;
                    return Ok(());
                }
                None => self.offset += n as u64,
            }
        }
    }
}

/// Returns the rotated files of `log_path` that exist, `<log>.1` (the
/// newest) first. The writer removes the oldest file before it renames the
/// others, so the numbers have no gap, except that `.1` may be missing for
/// an instant during a rotation.
pub fn rotated_files(log_path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for index in 1.. {
        let path = rotated_path(log_path, index);
        if path.exists() {
            files.push(path);
        } else if index > 1 {
            break;
        }
    }
    files
}

/// Opens the files of a log, oldest first. Files are opened newest first
/// and a file seen twice is skipped, so a rotation in between can only
/// leave out output newer than what was opened, which a follower reads
/// later.
pub fn open_segments(log_path: &Path) -> std::io::Result<Vec<Segment>> {
    let mut segments: Vec<Segment> = Vec::new();
    let paths = std::iter::once(log_path.to_path_buf()).chain(rotated_files(log_path));
    for path in paths {
        if let Some(segment) = Segment::open(&path)? {
            if segments.iter().all(|seen| seen.id != segment.id) {
                segments.push(segment);
            }
        }
    }
    segments.reverse();
    Ok(segments)
}

/// Reads the complete lines of a file backward from an offset.
pub struct BackwardLines<'a> {
    file: &'a File,
    /// Offset of `buffer[0]` in the file.
    start: u64,
    /// Bytes not returned yet, each a whole line with its newline, the
    /// first possibly without its beginning.
    buffer: Vec<u8>,
}

impl<'a> BackwardLines<'a> {
    /// Starts at the end of the last complete line before `end`.
    pub fn new(file: &'a File, end: u64) -> std::io::Result<BackwardLines<'a>> {
        let mut lines = BackwardLines {
            file,
            start: end,
            buffer: Vec::new(),
        };
        // Drop an unfinished last line: it is read forward once complete.
        lines.align_to_newline()?;
        Ok(lines)
    }

    /// Drops the bytes after the last newline, reading backward until one
    /// is found. Afterwards the buffer ends with a newline, or it is empty
    /// and `start` is 0.
    fn align_to_newline(&mut self) -> std::io::Result<()> {
        loop {
            if let Some(newline) = self.buffer.iter().rposition(|&b| b == b'\n') {
                self.buffer.truncate(newline + 1);
                return Ok(());
            }
            self.buffer.clear();
            if self.start == 0 {
                return Ok(());
            }
            self.read_before()?;
        }
    }

    /// Prepends the block before `start` to the buffer.
    fn read_before(&mut self) -> std::io::Result<()> {
        let length = (READ_SIZE as u64).min(self.start) as usize;
        let offset = self.start - length as u64;
        let mut block = vec![0u8; length];
        self.file.read_exact_at(&mut block, offset)?;
        block.extend_from_slice(&self.buffer);
        self.buffer = block;
        self.start = offset;
        Ok(())
    }

    /// Returns the offset and bytes (without the newline) of the line
    /// before the last one returned.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            if self.buffer.is_empty() {
                return Ok(None);
            }
            let body = &self.buffer[..self.buffer.len() - 1];
            let line_start = match body.iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None if self.start == 0 => 0,
                None if self.buffer.len() > MAX_LINE => {
                    // Return the end of the oversized line, which is not a
                    // record, and skip its beginning.
                    let line = body.to_vec();
                    let offset = self.start;
                    self.buffer.clear();
                    self.align_to_newline()?;
                    return Ok(Some((offset, line)));
                }
                None => {
                    self.read_before()?;
                    continue;
                }
            };
            let line = body[line_start..].to_vec();
            self.buffer.truncate(line_start);
            return Ok(Some((self.start + line_start as u64, line)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_forward(segment: &mut Segment) -> Vec<(u64, String)> {
        let mut buffer = Vec::new();
        let mut lines = Vec::new();
        segment
            .read_lines(&mut buffer, |_, offset, line| {
                lines.push((offset, String::from_utf8(line.to_vec()).unwrap()));
                Ok(())
            })
            .unwrap();
        lines
    }

    #[test]
    fn forward_lines_wait_for_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nbb\ncc").unwrap();
        let mut segment = Segment::open(&path).unwrap().unwrap();
        assert_eq!(
            lines_forward(&mut segment),
            [(0, "a".to_owned()), (2, "bb".to_owned())]
        );
        assert_eq!(segment.offset, 5);
        std::fs::write(&path, "a\nbb\nccc\n").unwrap();
        assert_eq!(lines_forward(&mut segment), [(5, "ccc".to_owned())]);
    }

    #[test]
    fn forward_lines_longer_than_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let long = "y".repeat(READ_SIZE * 3 + 7);
        std::fs::write(&path, format!("x\n{long}\nz\n")).unwrap();
        let mut segment = Segment::open(&path).unwrap().unwrap();
        let lines = lines_forward(&mut segment);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].1, long);
        assert_eq!(lines[2], (long.len() as u64 + 3, "z".to_owned()));
    }

    #[test]
    fn backward_lines_skip_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let long = "q".repeat(READ_SIZE + 100);
        std::fs::write(&path, format!("first\n\n{long}\nlast\nunfinished")).unwrap();
        let file = File::open(&path).unwrap();
        let length = file.metadata().unwrap().len();
        let mut lines = BackwardLines::new(&file, length).unwrap();
        let mut seen = Vec::new();
        while let Some((offset, line)) = lines.next_line().unwrap() {
            seen.push((offset, String::from_utf8(line).unwrap()));
        }
        let expected = [
            (long.len() as u64 + 8, "last".to_owned()),
            (7, long),
            (6, String::new()),
            (0, "first".to_owned()),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn backward_lines_skip_oversized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let huge = "h".repeat(MAX_LINE + READ_SIZE * 2);
        std::fs::write(&path, format!("first\n{huge}\nlast\n")).unwrap();
        let file = File::open(&path).unwrap();
        let length = file.metadata().unwrap().len();
        let mut lines = BackwardLines::new(&file, length).unwrap();
        let mut seen = Vec::new();
        while let Some((_, line)) = lines.next_line().unwrap() {
            seen.push(line.len());
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], 4);
        assert!(seen[1] > MAX_LINE, "{}", seen[1]);
        assert!(seen[1] < huge.len(), "{}", seen[1]);
        assert_eq!(seen[2], 5);
    }

    #[test]
    fn forward_lines_skip_oversized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let huge = "h".repeat(MAX_LINE * 2);
        std::fs::write(&path, format!("first\n{huge}\nlast\n")).unwrap();
        let mut segment = Segment::open(&path).unwrap().unwrap();
        let lines = lines_forward(&mut segment);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].1, "first");
        assert!(lines[1].1.len() < MAX_LINE);
        assert_eq!(lines[2].1, "last");
    }

    #[test]
    fn segments_ordered_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        for (index, name) in [(2, "two"), (1, "one")] {
            std::fs::write(rotated_path(&path, index), name).unwrap();
        }
        std::fs::write(&path, "current").unwrap();
        let names: Vec<String> = open_segments(&path)
            .unwrap()
            .iter()
            .map(|segment| std::io::read_to_string(&segment.file).unwrap())
            .collect();
        assert_eq!(names, ["two", "one", "current"]);
    }
}
