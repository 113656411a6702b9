//! The pid file: the pid of the generation that accepts, written atomically.

use std::io::{self, Write};
use std::path::Path;

/// Writes `pid` to `path` through a temporary file and a rename, so a reader
/// sees the old pid or the new one, never a partial file.
pub(crate) fn write(path: &Path, pid: u32) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "pid file path has no file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{pid}.tmp"));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        // std opens with O_CLOEXEC.
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{pid}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the pid file if it still holds `pid` (a successor may have
/// replaced it).
pub(crate) fn remove_if_own(path: &Path, pid: u32) -> io::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim() == pid.to_string() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_replaces_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        super::write(&path, 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "10\n");
        super::write(&path, 11).unwrap();
        super::remove_if_own(&path, 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11\n");
        super::remove_if_own(&path, 11).unwrap();
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temp files left"
        );
    }
}
