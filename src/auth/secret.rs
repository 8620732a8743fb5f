//! The generated JWT secret, kept in the data directory and readable by its owner only.

use std::path::Path;

use super::random_secret_hex;
use crate::error::{Error, Result};

/// The file inside the data directory holding a generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// Reads the generated secret from the data dir, creating it (mode 0600) on
/// first start. A secret file others can read is made private first, with a
/// warning: whoever reads it can sign tokens for any account.
pub(super) fn load_or_create(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(JWT_SECRET_FILE);
    make_private_if_exposed(&path)?;
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::internal_from(format!("reading {}", path.display()), err)),
    }
    let secret = random_secret_hex(32);
    write_private(&path, &secret).map_err(|e| Error::internal_from(format!("writing {}", path.display()), e))?;
    tracing::info!(path = %path.display(), "no JWT secret configured: generated one and stored it in the data dir");
    Ok(secret)
}

/// Sets an existing secret file readable by group or others to mode 0600.
#[cfg(unix)]
fn make_private_if_exposed(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::internal_from(format!("inspecting {}", path.display()), err)),
    };
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the JWT secret file was readable by other users; made it private (0600). Rotate the secret if others could read it"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::internal_from(format!("making {} private", path.display()), e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private_if_exposed(_path: &Path) -> Result<()> {
    Ok(())
}

/// Writes `contents` to a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
    }

    /// A generated secret is private, and reading it again gives the same secret.
    #[test]
    fn generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("dir");
        let first = load_or_create(dir.path()).expect("secret");
        assert_eq!(mode(&dir.path().join(JWT_SECRET_FILE)), 0o600);
        assert_eq!(load_or_create(dir.path()).ok(), Some(first));
    }

    /// A pre-existing world-readable secret file (empty or not) ends up mode 0600.
    #[test]
    fn exposed_secret_files_are_made_private() {
        for contents in ["", "an existing secret of enough length"] {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join(JWT_SECRET_FILE);
            std::fs::write(&path, contents).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let secret = load_or_create(dir.path()).expect("secret");
            assert_eq!(mode(&path), 0o600, "{contents:?}");
            assert!(!secret.is_empty());
        }
    }
}
