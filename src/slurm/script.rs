//! The batch script `sweep submit` hands to sbatch: `#SBATCH` lines, then `exec sweep run ...`
//! with no shell left between Slurm and sweep (a wrapper shell would take Slurm's signals and
//! leave the workers orphaned). A pure function of its settings, so it is tested as text.
use std::path::Path;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("{what} contains a line break, which cannot go into a batch script: {value:?}")]
    LineBreak { what: String, value: String },
    #[error("`{0}` after `--` is not an sbatch option: give options such as `-- --mem=8G --qos=high` (a value may follow its option: `--mem 8G`)")]
    NotAnOption(String),
}

/// What the batch script asks of Slurm, and the command it runs.
#[derive(Clone, Debug)]
pub struct BatchScript<'a> {
    pub job_name: &'a str,
    /// Array tasks; 1 submits a plain job.
    pub tasks: usize,
    /// `--gres=gpu:G` per task; 0 asks for no GPU.
    pub gpus_per_task: usize,
    pub cpus_per_task: Option<usize>,
    pub time: Option<&'a str>,
    pub partition: Option<&'a str>,
    /// Where Slurm writes each task's output (`slurm-%A_%a.out`, or `slurm-%j.out`).
    pub output_dir: &'a Path,
    /// More sbatch options, each its own `#SBATCH` line (a value may follow its option).
    pub extra: &'a [String],
    /// The program and its arguments: `sweep run FILE --db ...`.
    pub command: &'a [String],
}

/// Seconds before the time limit Slurm sends SIGUSR1 to the batch step: `sweep run`'s
/// `--usr1-grace` (90 s) to finish epochs and save, and time left to release the runs and
/// requeue.
pub const WARN_SECS: u64 = 120;

impl BatchScript<'_> {
    pub fn render(&self) -> Result<String, ScriptError> {
        let mut options: Vec<String> = vec![format!("--job-name={}", self.job_name)];
        if self.tasks > 1 {
            options.push(format!("--array=0-{}", self.tasks - 1));
        }
        if self.gpus_per_task > 0 {
            options.push(format!("--gres=gpu:{}", self.gpus_per_task));
        }
        if let Some(n) = self.cpus_per_task {
            options.push(format!("--cpus-per-task={n}"));
        }
        if let Some(t) = self.time {
            options.push(format!("--time={t}"));
        }
        if let Some(p) = self.partition {
            options.push(format!("--partition={p}"));
        }
        options.push("--requeue".into());
        options.push("--open-mode=append".into());
        options.push(format!("--signal=B:USR1@{WARN_SECS}"));
        let pattern = if self.tasks > 1 {
            "slurm-%A_%a.out"
        } else {
            "slurm-%j.out"
        };
        let dir = self.output_dir.to_string_lossy().replace('%', "%%");
        options.push(format!("--output={dir}/{pattern}"));
        let mut lines = vec!["#!/bin/bash".to_string()];
        for o in &options {
            refuse_line_breaks("an sbatch option", o)?;
            lines.push(format!("#SBATCH {}", sbatch_escape(o)));
        }
        for group in group_options(self.extra)? {
            let words: Vec<String> = group.iter().map(|w| sbatch_escape(w)).collect();
            lines.push(format!("#SBATCH {}", words.join(" ")));
        }
        lines.push(
            "# Written by `sweep submit`. SIGUSR1 (the time limit is near, or preemption): the \
             runs save and are released, and the task requeues itself while runs are left."
                .into(),
        );
        for word in self.command {
            refuse_line_breaks("the command", word)?;
        }
        let words: Vec<String> = self.command.iter().map(|w| shell_quote(w)).collect();
        lines.push(format!("exec {}", words.join(" ")));
        Ok(lines.join("\n") + "\n")
    }
}

fn refuse_line_breaks(what: &str, value: &str) -> Result<(), ScriptError> {
    if value.contains(['\n', '\r']) {
        return Err(ScriptError::LineBreak {
            what: what.into(),
            value: value.into(),
        });
    }
    Ok(())
}

/// Options after `--`, one group per `#SBATCH` line: an option with the values that follow it
/// (`--mem 8G`).
fn group_options(extra: &[String]) -> Result<Vec<Vec<String>>, ScriptError> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for word in extra {
        refuse_line_breaks("an sbatch option after `--`", word)?;
        match groups.last_mut() {
            _ if word.starts_with('-') => groups.push(vec![word.clone()]),
            Some(group) => group.push(word.clone()),
            None => return Err(ScriptError::NotAnOption(word.clone())),
        }
    }
    Ok(groups)
}

/// One word of an `#SBATCH` line as sbatch reads it: a backslash takes the next character
/// literally, so whitespace, quotes, `#` (a comment otherwise) and backslashes are escaped.
pub fn sbatch_escape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_whitespace() || matches!(c, '\\' | '"' | '\'' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One word for bash, taken literally: as is when it holds only characters no shell treats
/// specially, else in single quotes (a `'` inside written as `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@,+%".contains(c));
    if plain {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// What bash makes of `word`: the test runs it through a real shell where one exists.
    fn through_bash(quoted: &str) -> Option<String> {
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("printf %s {quoted}")])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn shell_quoting_keeps_every_word_literal() {
        assert_eq!(shell_quote("/opt/sweep/bin/sweep"), "/opt/sweep/bin/sweep");
        assert_eq!(
            shell_quote("postgres://me@db:5432/sweeps"),
            "postgres://me@db:5432/sweeps"
        );
        assert_eq!(shell_quote("my runs/a.toml"), "'my runs/a.toml'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME`id`"), "'$HOME`id`'");
        assert_eq!(shell_quote(""), "''");
        for word in [
            "a b",
            "it's \"quoted\"",
            "$HOME and ${PATH} and $(id)",
            "back\\slash",
            "semi;colon & pipe|",
            "",
            "*.toml ~",
        ] {
            if let Some(seen) = through_bash(&shell_quote(word)) {
                assert_eq!(seen, word, "{word:?} as {}", shell_quote(word));
            }
        }
    }

    #[test]
    fn sbatch_words_escape_whitespace_quotes_and_comments() {
        assert_eq!(sbatch_escape("--mem=8G"), "--mem=8G");
        assert_eq!(
            sbatch_escape("--output=/my runs/#1/x"),
            r"--output=/my\ runs/\#1/x"
        );
        assert_eq!(sbatch_escape(r#"a"b'c\d"#), r#"a\"b\'c\\d"#);
    }

    fn script(tasks: usize, gpus: usize, extra: &[String]) -> Result<String, ScriptError> {
        let dir = PathBuf::from("/shared/runs/lr batch");
        let command = words(&[
            "/opt/bin/sweep",
            "run",
            "/home/me/sweeps/lr_batch.toml",
            "--db",
            "postgres://me@db/sweeps",
            "--runs-dir",
            "/shared/runs",
        ]);
        BatchScript {
            job_name: "sweep-lr_batch",
            tasks,
            gpus_per_task: gpus,
            cpus_per_task: Some(8),
            time: Some("4:00:00"),
            partition: None,
            output_dir: &dir,
            extra,
            command: &command,
        }
        .render()
    }

    #[test]
    fn an_array_script_asks_for_gpus_requeue_and_the_warning_then_execs_sweep() {
        let text = script(4, 1, &words(&["--mem", "8G", "--qos=high"])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "#!/bin/bash",
                "#SBATCH --job-name=sweep-lr_batch",
                "#SBATCH --array=0-3",
                "#SBATCH --gres=gpu:1",
                "#SBATCH --cpus-per-task=8",
                "#SBATCH --time=4:00:00",
                "#SBATCH --requeue",
                "#SBATCH --open-mode=append",
                "#SBATCH --signal=B:USR1@120",
                r"#SBATCH --output=/shared/runs/lr\ batch/slurm-%A_%a.out",
                "#SBATCH --mem 8G",
                "#SBATCH --qos=high",
                lines[12],
                "exec /opt/bin/sweep run /home/me/sweeps/lr_batch.toml --db postgres://me@db/sweeps --runs-dir /shared/runs",
            ]
        );
        assert!(lines[12].starts_with("# "), "{}", lines[12]);
    }

    #[test]
    fn a_single_task_without_gpus_is_a_plain_job() {
        let text = script(1, 0, &[]).unwrap();
        assert!(!text.contains("--array"), "{text}");
        assert!(!text.contains("--gres"), "{text}");
        assert!(text.contains("/slurm-%j.out\n"), "{text}");
    }

    #[test]
    fn refuses_line_breaks_and_stray_words() {
        let err = script(2, 1, &words(&["high"])).unwrap_err();
        assert_eq!(err, ScriptError::NotAnOption("high".into()));
        let err = script(2, 1, &words(&["--comment=a\nexec rm"])).unwrap_err();
        assert!(matches!(err, ScriptError::LineBreak { .. }), "{err}");
    }

    #[test]
    fn a_percent_in_the_output_folder_is_literal() {
        let command = words(&["sweep"]);
        let text = BatchScript {
            job_name: "j",
            tasks: 1,
            gpus_per_task: 0,
            cpus_per_task: None,
            time: None,
            partition: None,
            output_dir: Path::new("/runs/100%"),
            extra: &[],
            command: &command,
        }
        .render()
        .unwrap();
        assert!(text.contains("--output=/runs/100%%/slurm-%j.out"), "{text}");
    }
}
