//! `ringmq passwd`: adds, changes and deletes users of a password file, like
//! `mosquitto_passwd`. The password is never echoed nor taken from the command line: on a
//! terminal it is asked twice without echo, otherwise one line is read from standard
//! input (for scripts and tests). The file is rewritten atomically (a temporary file in
//! the same directory, synced, then renamed over it) with mode 0600.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::passwd::{check_user, hash_password, PasswordFile};

/// What to do.
#[derive(Debug, Clone)]
pub struct PasswdRequest {
    pub file: PathBuf,
    pub user: String,
    /// Start a new file (replacing any file there).
    pub create: bool,
    /// Delete the user instead of setting a password.
    pub delete: bool,
    /// Also store SCRAM-SHA-256 credentials with these iterations.
    pub scram_iterations: Option<u32>,
}

/// Runs the request; `Ok` is what to print.
pub fn run(req: &PasswdRequest) -> Result<String, String> {
    check_user(&req.user).map_err(|e| format!("user {:?}: {e}", req.user))?;
    if let Some(i) = req.scram_iterations {
        if !(4096..=1_000_000).contains(&i) {
            return Err(format!(
                "--scram-iterations {i}: must be between 4096 and 1000000"
            ));
        }
    }
    let mut file = if req.create {
        PasswordFile::default()
    } else {
        read(&req.file)?
    };
    let message = if req.delete {
        if !file.remove(&req.user) {
            return Err(format!(
                "user {:?} is not in {}",
                req.user,
                req.file.display()
            ));
        }
        format!("deleted user {:?}", req.user)
    } else {
        let password = read_password()?;
        let entry =
            hash_password(password.as_bytes(), req.scram_iterations).map_err(|e| e.to_string())?;
        let existed = file.get(&req.user).is_some();
        file.set(&req.user, entry);
        if existed {
            format!("changed the password of {:?}", req.user)
        } else {
            format!("added user {:?}", req.user)
        }
    };
    write_atomically(&req.file, &file.render())
        .map_err(|e| format!("cannot write {}: {e}", req.file.display()))?;
    Ok(message)
}

fn read(path: &Path) -> Result<PasswordFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} does not exist (use -c to create it)", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        }
    })?;
    PasswordFile::parse(&text).map_err(|e| format!("{} {e}", path.display()))
}

/// The password: asked twice without echo on a terminal, else one line of stdin.
fn read_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        line
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}

/// Writes `text` to a temporary file beside `path` (mode 0600), syncs it, renames it over
/// `path`, and syncs the directory: a reader sees the old file or the new one, never half.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
