//! Who holds a run: the `owner` column names the `sweep run` process as `host:pid`, plus
//! `:job` under Slurm (`host:pid:12_3` for task 3 of array job 12), and says whether that
//! process may still be alive. A process on this host is checked directly; one on another host
//! (a cluster node) is judged by its heartbeat alone, which the store's claim already weighs.
use std::fmt;
use std::path::Path;

/// How long a `running` run's owner may go without a heartbeat before another process takes
/// the run over (`sweep run --stale-after`, and what `sweep status` calls abandoned).
pub const DEFAULT_STALE_SECS: u64 = 60;

/// A `sweep run` process as the store names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// The Slurm job (`12_3` for an array task, else the job id), when under Slurm.
    pub job: Option<String>,
}

impl Owner {
    /// This process, inside Slurm job `job` if any.
    pub fn this_process(job: Option<&str>) -> Owner {
        Owner {
            host: host_name(),
            pid: std::process::id(),
            job: job.map(str::to_string),
        }
    }

    /// Reads `host:pid` or `host:pid:job`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Owner> {
        let mut parts = text.splitn(3, ':');
        let host = parts.next().filter(|h| !h.is_empty())?;
        let pid = parts.next()?.parse::<u32>().ok()?;
        let job = match parts.next() {
            Some("") => return None,
            other => other.map(str::to_string),
        };
        Some(Owner {
            host: host.to_string(),
            pid,
            job,
        })
    }

    /// Whether this process may still be alive, seen from `here` (this host's name): only a
    /// process on the same host can be checked; one elsewhere counts as alive, so that its
    /// heartbeat decides.
    fn alive_from(&self, here: &str) -> bool {
        if self.host != here || !Path::new("/proc/self").exists() {
            return true;
        }
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.pid)?;
        if let Some(job) = &self.job {
            write!(f, ":{job}")?;
        }
        Ok(())
    }
}

/// This machine's name, as `gethostname(2)` gives it (a cluster node's own name; a container
/// without /etc/hostname still has one). `:` is replaced, since it separates the owner's
/// fields.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).trim().to_string()
    } else {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name.replace(':', "_")
    }
}

/// Whether the process named by `owner` (a stored `owner` value) may still be alive. Only
/// processes on this host can be checked; others, and names that do not parse, are judged by
/// their heartbeats.
pub fn owner_alive(owner: &str) -> bool {
    Owner::parse(owner).is_none_or(|o| o.alive_from(&host_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_round_trips() {
        let plain = Owner::parse("node7:4242").unwrap();
        assert_eq!(
            plain,
            Owner {
                host: "node7".into(),
                pid: 4242,
                job: None
            }
        );
        assert_eq!(plain.to_string(), "node7:4242");
        let slurm = Owner::parse("gpu-03.cluster:17:12_3").unwrap();
        assert_eq!(
            (slurm.host.as_str(), slurm.pid, slurm.job.as_deref()),
            ("gpu-03.cluster", 17, Some("12_3"))
        );
        assert_eq!(slurm.to_string(), "gpu-03.cluster:17:12_3");
        assert_eq!(Owner::parse("n:1:99").unwrap().job.as_deref(), Some("99"));
    }

    #[test]
    fn refuses_malformed_names() {
        for bad in [
            "", "node", "node:", ":12", "node:pid", "node:-1", "node:12:",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_processes_on_this_host_are_checked() {
        let me = Owner::this_process(Some("5_1"));
        assert!(me.alive_from(&me.host));
        assert!(owner_alive(&me.to_string()));
        // A pid that cannot exist (above Linux's pid_max limit of 2^22).
        let gone = Owner {
            pid: 4_194_304 + 17,
            ..me.clone()
        };
        if Path::new("/proc/self").exists() {
            assert!(!gone.alive_from(&me.host));
            assert!(!owner_alive(&gone.to_string()));
        }
        // The same pid on another node: only its heartbeat can tell.
        assert!(gone.alive_from("some-other-node"));
        assert!(owner_alive("not an owner"));
    }
}
