//! What libpq fills in and the `postgres` crate does not: the user (`PGUSER`, else the login
//! name) and the password (`PGPASSWORD`, else the first matching line of `PGPASSFILE` or
//! `~/.pgpass`), so that a password never has to be written into `--db` (nor into the batch
//! scripts `sweep submit` hands Slurm).
use std::path::{Path, PathBuf};

use postgres::config::Host;

/// Fill in the user and password `config` lacks, from the environment and the password file.
pub fn complete(config: &mut postgres::Config, env: &dyn Fn(&str) -> Option<String>) {
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
        {
            config.user(&user);
        }
    }
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = env("PGPASSWORD") {
        config.password(password);
        return;
    }
    let file = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
    let Some(text) = file.and_then(|f| readable(&f)) else {
        return;
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection as "localhost".
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    if let Some(password) = lookup(&text, [&host, &port, &db, &user]) {
        config.password(password);
    }
}

/// The password file's text, unless others may read it (libpq then ignores it too).
fn readable(file: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            crate::say!(
                "warning: {} is readable by others (chmod 0600 it); its passwords are ignored",
                file.display()
            );
            return None;
        }
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line `host:port:database:user:password` whose first four fields
/// match (`*` matches anything; `\:` and `\\` are a literal colon and backslash).
pub fn lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields = split(line);
        if fields.len() < 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let text = "# comment\nother:5432:*:me:no\ndb\\:1:5432:lab:me:a\\:b\n*:*:*:me:fallback\n";
        assert_eq!(
            lookup(text, ["db:1", "5432", "lab", "me"]).as_deref(),
            Some("a:b")
        );
        assert_eq!(
            lookup(text, ["db2", "5433", "x", "me"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup(text, ["db2", "5433", "x", "you"]), None);
    }

    #[test]
    fn the_environment_and_the_file_fill_in_what_the_url_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "dbhost:5432:sweeps:alice:s3cret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let f = file.to_string_lossy().into_owned();
        let env = |k: &str| match k {
            "PGPASSFILE" => Some(f.clone()),
            "USER" => Some("alice".to_string()),
            _ => None,
        };
        let mut c: postgres::Config = "postgres://dbhost/sweeps".parse().unwrap();
        complete(&mut c, &env);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
        // PGPASSWORD wins over the file; a password in the URL over both.
        let env2 = |k: &str| {
            if k == "PGPASSWORD" {
                Some("env".to_string())
            } else {
                env(k)
            }
        };
        let mut c: postgres::Config = "postgres://dbhost/sweeps".parse().unwrap();
        complete(&mut c, &env2);
        assert_eq!(c.get_password(), Some(&b"env"[..]));
        let mut c: postgres::Config = "postgres://bob:url@dbhost/sweeps".parse().unwrap();
        complete(&mut c, &env2);
        assert_eq!(
            (c.get_user(), c.get_password()),
            (Some("bob"), Some(&b"url"[..]))
        );
        // A file others may read is ignored, as libpq ignores it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let mut c: postgres::Config = "postgres://dbhost/sweeps".parse().unwrap();
            complete(&mut c, &env);
            assert_eq!(c.get_password(), None);
        }
    }
}
