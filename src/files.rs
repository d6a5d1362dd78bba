//! Files in the data dir: normalised inputs and job results. Every name is generated here;
//! nothing a user sent names a file.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::domain::JobId;

pub const INPUTS: &str = "inputs";
pub const RESULTS: &str = "results";

/// Stores a normalised input and returns its name relative to the data dir.
pub fn store_input(data_dir: &Path, png: &[u8]) -> io::Result<String> {
    let name = format!("{INPUTS}/{}.png", ulid::Ulid::new());
    write_atomic(&data_dir.join(&name), png)?;
    Ok(name)
}

/// The relative name of a job's `index`-th result.
pub fn result_name(job: JobId, index: usize) -> String {
    format!("{RESULTS}/{job}/{index}.png")
}

/// Resolves a relative name inside the data dir, refusing anything that could leave it.
pub fn resolve(data_dir: &Path, relative: &str) -> io::Result<PathBuf> {
    let rel = Path::new(relative);
    let safe = !relative.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{relative:?} is not a data dir file name"),
        ));
    }
    Ok(data_dir.join(rel))
}

pub fn read(data_dir: &Path, relative: &str) -> io::Result<Vec<u8>> {
    std::fs::read(resolve(data_dir, relative)?)
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Free space for unprivileged writes on the file system holding `dir`, in bytes.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_data_dir() {
        let d = Path::new("/data");
        assert!(resolve(d, "inputs/a.png").is_ok());
        assert!(resolve(d, "../etc/passwd").is_err());
        assert!(resolve(d, "/etc/passwd").is_err());
        assert!(resolve(d, "inputs/../../x").is_err());
        assert!(resolve(d, "").is_err());
    }
}
