//! Where a store lives: a SQLite file (one workstation) or a PostgreSQL server (a cluster),
//! chosen by the `--db` string, and where its runs' checkpoints go.
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The `--db` argument: a file path keeps SQLite; `postgres://` or `postgresql://` selects
/// PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A libpq-style connection URL.
    Postgres(String),
}

impl Location {
    /// The folder checkpoints and resume states go to by default: beside a SQLite file.
    /// A PostgreSQL store has no folder of its own (`None`): the runs folder must be given,
    /// on a filesystem every node sees.
    pub fn default_runs_dir(&self) -> Option<PathBuf> {
        match self {
            Location::Sqlite(path) => Some(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            ),
            Location::Postgres(_) => None,
        }
    }

    /// Whether this is a server reached over the network (several hosts may share it).
    pub fn is_shared(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Location::Postgres(s.to_string()));
        }
        if let Some((scheme, _)) = lower.split_once("://") {
            return Err(format!(
                "`{scheme}://` is not a database sweep knows: give a SQLite file path (runs/sweep.db) or a postgres://user@host/dbname URL"
            ));
        }
        if s.is_empty() {
            return Err("an empty database path: give a file such as runs/sweep.db".into());
        }
        Ok(Location::Sqlite(PathBuf::from(s)))
    }
}

/// Shown in messages and in the commands sweep suggests: the file, or the URL with any
/// password hidden.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    };
    // `?password=...` as a query parameter.
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |j| i + j);
        out.replace_range(i + "password=".len()..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_sqlite_and_urls_select_postgres() {
        assert_eq!(
            "runs/sweep.db".parse::<Location>(),
            Ok(Location::Sqlite("runs/sweep.db".into()))
        );
        assert!(matches!(
            "postgresql://u@h/db".parse::<Location>(),
            Ok(Location::Postgres(_))
        ));
        let err = "mysql://u@h/db".parse::<Location>().unwrap_err();
        assert!(err.contains("mysql://"), "{err}");
        assert_eq!(
            Location::Sqlite("sweep.db".into()).default_runs_dir(),
            Some(PathBuf::from("."))
        );
        assert_eq!(
            "postgres://u@h/db"
                .parse::<Location>()
                .unwrap()
                .default_runs_dir(),
            None
        );
    }

    #[test]
    fn passwords_never_show() {
        let at = |s: &str| s.parse::<Location>().unwrap().to_string();
        assert_eq!(
            at("postgres://me:s3cret@db:5432/lab"),
            "postgres://me:***@db:5432/lab"
        );
        assert_eq!(at("postgres://me@db/lab"), "postgres://me@db/lab");
        assert_eq!(
            at("postgres://db/lab?user=me&password=s3cret&sslmode=disable"),
            "postgres://db/lab?user=me&password=***&sslmode=disable"
        );
    }
}
