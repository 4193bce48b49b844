//! The serve lock: a server that keeps sessions and secrets in memory is the
//! only server of its SQLite database.
//!
//! A server with the read cache ([`crate::read_cache`]) must be the only one
//! writing what it keeps: a second server on the same file could end a session
//! that the first would go on accepting. So every `safebox serve` on SQLite
//! locks `<database>.lock` (`flock`, released by the kernel when the process
//! ends, however it ends) before it opens the database: exclusively with the
//! read cache on, shared with it off. Servers without the cache can share a
//! file; a server with it cannot share one with any other server. The file
//! holds the pid of the last server that locked it, for the message.
//!
//! The lock is a file of its own, never the database: closing any descriptor of
//! the database file would drop SQLite's own POSIX locks on it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use super::{DatabaseUrl, DbError};

/// A server's claim on its SQLite database, until dropped.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    path: PathBuf,
}

impl ServeLock {
    /// Claims the SQLite database at `url` for a server: `exclusive` for one
    /// with the read cache, which no other server may share, else shared with
    /// other servers without it. `Ok(None)` for a MySQL URL: a MySQL server is
    /// shared by design, and nothing is kept in memory there.
    ///
    /// Fails with [`DbError::InUse`] when a server holds a claim that this one
    /// cannot share, and with [`DbError::Connect`] when the lock file cannot be
    /// opened.
    pub fn claim(url: &str, exclusive: bool) -> Result<Option<Self>, DbError> {
        let DatabaseUrl::Sqlite(database) = DatabaseUrl::parse(url)? else {
            return Ok(None);
        };
        let path = lock_path(&database);
        let cannot = |err: std::io::Error| DbError::Connect {
            database: database.clone(),
            source: format!("cannot open the lock file {}: {err}", path.display()).into(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        let locked = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DbError::InUse {
                    database,
                    holder: holder(&mut file),
                    exclusive,
                });
            }
            Err(TryLockError::Error(err)) => return Err(cannot(err)),
        }
        // Best effort: the pid only helps the message of a second server.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(Some(Self { _file: file, path }))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<database file>.lock`, for the file however it is named: an SQLite URI
/// (`file:safebox.db?mode=rwc`) is reduced to its path, and the path made
/// canonical (symbolic links and `..` resolved, through the file itself when it
/// exists, else through its directory), so that two spellings of one database
/// share one lock. (Two hard links to one file are two paths: not caught.)
fn lock_path(database: &str) -> PathBuf {
    let mut file = database;
    if let Some(uri) = file.strip_prefix("file:") {
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        file = path
            .strip_prefix("//localhost")
            .or_else(|| path.strip_prefix("//"))
            .unwrap_or(path);
    }
    let file = Path::new(file);
    let canonical = std::fs::canonicalize(file).or_else(|_| {
        let name = file.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
        let parent = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::canonicalize(parent).map(|dir| dir.join(name))
    });
    let mut lock = canonical
        .unwrap_or_else(|_| file.to_owned())
        .into_os_string();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// The pid the holder wrote into the lock file, if it did.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_use(claim: Result<Option<ServeLock>, DbError>) -> String {
        match claim {
            Err(err @ DbError::InUse { .. }) => err.to_string(),
            other => panic!("expected the database in use, got {other:?}"),
        }
    }

    #[test]
    fn a_server_with_the_cache_shares_its_database_with_no_other_server() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("safebox.db").display());
        let first = ServeLock::claim(&url, true)
            .unwrap()
            .expect("an SQLite claim");
        assert_eq!(first.path(), dir.path().join("safebox.db.lock"));
        for exclusive in [true, false] {
            let message = in_use(ServeLock::claim(&url, exclusive));
            assert!(
                message.contains(&format!("pid {}", std::process::id())),
                "{message}"
            );
            assert!(message.contains("safebox.db"), "{message}");
        }
        drop(first);
        assert!(ServeLock::claim(&url, true).unwrap().is_some());
    }

    #[test]
    fn servers_without_the_cache_share_a_database_but_not_with_one_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("safebox.db").display().to_string();
        let one = ServeLock::claim(&url, false).unwrap();
        let two = ServeLock::claim(&url, false).unwrap();
        assert!(one.is_some() && two.is_some());
        let message = in_use(ServeLock::claim(&url, true));
        assert!(message.contains("SAFEBOX_READ_CACHE_MIB=0"), "{message}");
        drop((one, two));
        assert!(ServeLock::claim(&url, true).unwrap().is_some());
    }

    #[test]
    fn every_spelling_of_one_database_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("data");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("safebox.db"), b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(real.join("safebox.db"), &link).unwrap();
        let first = ServeLock::claim(&real.join("safebox.db").display().to_string(), true)
            .unwrap()
            .unwrap();
        for spelling in [
            format!("sqlite://{}", real.join("../data/safebox.db").display()),
            link.display().to_string(),
            format!("sqlite:file:{}?mode=rwc", real.join("safebox.db").display()),
            format!(
                "sqlite:file://localhost{}",
                real.join("safebox.db").display()
            ),
        ] {
            in_use(ServeLock::claim(&spelling, false));
        }
        assert_eq!(
            first.path(),
            std::fs::canonicalize(&real)
                .unwrap()
                .join("safebox.db.lock")
        );
    }

    #[test]
    fn another_database_is_another_claim_and_mysql_needs_none() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServeLock::claim(&dir.path().join("a.db").display().to_string(), true).unwrap();
        let b = ServeLock::claim(&dir.path().join("b.db").display().to_string(), true).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(
            ServeLock::claim("mysql://u:p@127.0.0.1:3306/safebox", true)
                .unwrap()
                .is_none()
        );
    }
}
