//! Running external tools (git, helm, kustomize) with a deadline, a cancellation token and a
//! cap on what they may print.
//!
//! Every child runs in its own process group so that a timeout or a cancellation kills the
//! tool *and* what it started (git spawns `git-remote-https` and `ssh`; helm may run plugins).
//! Arguments are passed as a vector, never through a shell; secrets travel in the
//! environment or in files, never in `args`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Environment added to the inherited one (`PATH`, `HOME`, ...).
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: Option<PathBuf>,
    pub timeout: Duration,
    /// Most bytes of stdout kept; a tool printing more is killed.
    pub max_stdout: usize,
    pub stdin: Option<Vec<u8>>,
    /// Inherited environment variables removed before `env` is applied.
    pub remove_env: Vec<OsString>,
    /// Most bytes of address space (`RLIMIT_AS`) the child may map. Set by the parent with
    /// `prlimit(2)` right after the spawn and before anything is written to the child's
    /// stdin, so a child that waits for its input (the Jsonnet worker) runs nothing
    /// unlimited. A tool that starts working before reading stdin is limited a moment later.
    pub memory_limit: Option<u64>,
}

impl CommandSpec {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            timeout: Duration::from_secs(90),
            max_stdout: 64 * 1024 * 1024,
            stdin: None,
            remove_env: Vec::new(),
            memory_limit: None,
        }
    }

    /// Drops every inherited variable whose name starts with `prefix` (e.g. `GIT_`: a
    /// `GIT_SSL_CAINFO`, `GIT_DIR` or `GIT_SSH_COMMAND` of the host must not change what
    /// plumb's git does).
    pub fn without_inherited(mut self, prefix: &str) -> Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with(prefix) {
                self.remove_env.push(key);
            }
        }
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn max_stdout(mut self, bytes: usize) -> Self {
        self.max_stdout = bytes;
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The program's file name, for messages (never the arguments: they may name temp files
    /// but the policy is to keep messages short and free of anything user-controlled).
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }
}

/// What a finished tool left behind.
#[derive(Debug)]
pub struct CommandOutput {
    pub success: bool,
    pub code: Option<i32>,
    /// The signal that ended the tool, when one did (e.g. `SIGABRT` after a failed
    /// allocation under [`CommandSpec::memory_limit`]).
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded and capped at [`MAX_STDERR`] bytes.
    pub stderr: String,
}

/// Standard error beyond this many bytes is dropped (the first part holds the message).
pub const MAX_STDERR: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{program} could not be started: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    TimedOut { program: String, timeout: Duration },
    #[error("{program} was cancelled")]
    Cancelled { program: String },
    #[error("{program} printed more than {limit} bytes and was killed")]
    OutputTooLarge { program: String, limit: usize },
    #[error("{program}: setting its memory limit failed: {source}")]
    Limit {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the output of {program}: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

enum Finish {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
    Overflow,
}

/// Runs `spec` to completion, or kills its process group on timeout, cancellation or too
/// much output.
pub async fn run(
    spec: &CommandSpec,
    cancel: &CancellationToken,
) -> Result<CommandOutput, CommandError> {
    let program = spec.name();
    let mut command = tokio::process::Command::new(&spec.program);
    for key in &spec.remove_env {
        command.env_remove(key);
    }
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &spec.current_dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| CommandError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    if let Some(limit) = spec.memory_limit
        && let Err(source) = limit_memory(pid, limit)
    {
        kill_group(pid, &mut child).await;
        return Err(CommandError::Limit { program, source });
    }

    if let (Some(input), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            // A tool that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let (overflow_tx, overflow_rx) = tokio::sync::oneshot::channel::<()>();
    let stdout_task = child
        .stdout
        .take()
        .map(|out| tokio::spawn(read_capped(out, spec.max_stdout, Some(overflow_tx))));
    let stderr_task = child
        .stderr
        .take()
        .map(|err| tokio::spawn(read_capped(err, MAX_STDERR, None)));

    let finish = tokio::select! {
        status = child.wait() => Finish::Exited(status),
        _ = tokio::time::sleep(spec.timeout) => Finish::TimedOut,
        _ = cancel.cancelled() => Finish::Cancelled,
        Ok(()) = overflow_rx => Finish::Overflow,
    };
    let status = match finish {
        Finish::Exited(status) => status.map_err(|source| CommandError::Io {
            program: program.clone(),
            source,
        })?,
        other => {
            kill_group(pid, &mut child).await;
            if let Some(task) = stdout_task {
                task.abort();
            }
            if let Some(task) = stderr_task {
                task.abort();
            }
            return Err(match other {
                Finish::TimedOut => CommandError::TimedOut {
                    program,
                    timeout: spec.timeout,
                },
                Finish::Cancelled => CommandError::Cancelled { program },
                _ => CommandError::OutputTooLarge {
                    program,
                    limit: spec.max_stdout,
                },
            });
        }
    };
    // The tool has exited; grandchildren that kept the pipes open must not keep us waiting.
    let collect = async {
        let stdout = match stdout_task {
            Some(task) => task.await.ok().map(|r| r.map(|(bytes, _)| bytes)),
            None => None,
        };
        let stderr = match stderr_task {
            Some(task) => task.await.ok().map(|r| r.map(|(bytes, _)| bytes)),
            None => None,
        };
        (stdout, stderr)
    };
    let (stdout, stderr) = match tokio::time::timeout(Duration::from_secs(5), collect).await {
        Ok(pair) => pair,
        Err(_) => {
            kill_group(pid, &mut child).await;
            return Err(CommandError::TimedOut {
                program,
                timeout: spec.timeout,
            });
        }
    };
    let stdout = match stdout {
        Some(Ok(bytes)) => bytes,
        Some(Err(ReadError::Overflow)) => {
            return Err(CommandError::OutputTooLarge {
                program,
                limit: spec.max_stdout,
            });
        }
        Some(Err(ReadError::Io(source))) => return Err(CommandError::Io { program, source }),
        None => Vec::new(),
    };
    let stderr = match stderr {
        Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    Ok(CommandOutput {
        success: status.success(),
        code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        stdout,
        stderr,
    })
}

/// Caps the address space of process `pid` (soft and hard limit, so the child cannot raise
/// it again).
fn limit_memory(pid: Option<u32>, bytes: u64) -> std::io::Result<()> {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("the child has no process id"))?;
    rustix::process::prlimit(
        Some(pid),
        rustix::process::Resource::As,
        rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )?;
    Ok(())
}

enum ReadError {
    Overflow,
    Io(std::io::Error),
}

/// Reads a pipe to its end, keeping at most `limit` bytes. With `overflow`, exceeding the
/// limit is an error announced at once (stdout); without, the rest is drained and dropped
/// (stderr), so the tool never blocks on a full pipe.
async fn read_capped(
    mut pipe: impl AsyncRead + Unpin,
    limit: usize,
    overflow: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(Vec<u8>, bool), ReadError> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut truncated = false;
    loop {
        let n = pipe.read(&mut buf).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        if kept.len() + n > limit {
            if let Some(tx) = overflow {
                let _ = tx.send(());
                return Err(ReadError::Overflow);
            }
            let room = limit.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..room]);
            truncated = true;
        } else {
            kept.extend_from_slice(&buf[..n]);
        }
    }
}

/// Kills the child's whole process group (it leads one, see `process_group(0)`), then the
/// child itself in case the group kill could not run.
async fn kill_group(pid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pid) = pid {
        // `kill` from procps/coreutils: signalling a group needs no unsafe code this way.
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.kill().await;
}

/// Refuses a user-supplied value that a tool could mistake for an option or that could
/// split a line-based protocol: a leading `-`, NUL, CR or LF.
pub fn check_argument(what: &str, value: &str) -> Result<(), UnsafeArgument> {
    if value.starts_with('-') {
        return Err(UnsafeArgument {
            what: what.to_string(),
            reason: "starts with '-'",
        });
    }
    if value.contains(['\0', '\n', '\r']) {
        return Err(UnsafeArgument {
            what: what.to_string(),
            reason: "contains a NUL or line break",
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}; refused so that it cannot act as a command-line option")]
pub struct UnsafeArgument {
    pub what: String,
    pub reason: &'static str,
}
