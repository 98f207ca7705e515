//! The cluster's processes and their teardown.
//!
//! Every component runs in one process group whose leader is a tiny `sh` supervisor. The
//! supervisor reads component pids on its stdin, a pipe whose only writer is this process.
//! When this process ends for any reason — normal exit, panic, or SIGKILL — the kernel
//! closes the pipe, the supervisor sees end-of-file, kills the components (SIGKILL: the
//! cluster's state is disposable, and a graceful kube-apiserver shutdown takes many
//! seconds), waits until they are gone and removes the cluster's temporary directory. So no
//! component outlives the process that started it, without `unsafe` (no
//! `prctl(PR_SET_PDEATHSIG)`). A pid is only signalled while it is still in the supervisor's
//! process group, so a pid that the system reused for another process is never touched.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::Error;

/// What the supervisor runs. `$1` is the directory to remove at the end.
const SUPERVISOR_SCRIPT: &str = r#"
trap '' INT TERM HUP PIPE
dir="$1"
group=$$
# True while pid $1 exists and still belongs to our process group (field 3 after the
# command name in /proc/PID/stat is the process group).
ours() {
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  set -- $rest
  [ "$3" = "$group" ]
}
pids=""
while IFS= read -r pid; do pids="$pids $pid"; done
for p in $pids; do ours "$p" && kill -KILL "$p" 2>/dev/null; done
i=0
while [ "$i" -lt 100 ]; do
  alive=""
  for p in $pids; do ours "$p" && alive="$alive $p"; done
  [ -z "$alive" ] && break
  sleep 0.1
  i=$((i + 1))
done
[ -n "$dir" ] && rm -rf "$dir"
exit 0
"#;

/// One running component.
struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The process group of one cluster.
pub(crate) struct ProcessGroup {
    supervisor: Child,
    /// The write end of the supervisor's stdin; `None` once teardown started.
    supervisor_stdin: Mutex<Option<ChildStdin>>,
    components: Mutex<Vec<Component>>,
    log_dir: PathBuf,
}

impl ProcessGroup {
    /// Starts the supervisor; `cleanup_dir` is removed after the components stop.
    pub(crate) fn new(log_dir: &Path, cleanup_dir: &Path) -> Result<Self, Error> {
        use std::os::unix::process::CommandExt as _;
        let mut supervisor = Command::new("/bin/sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("plumb-testcluster-supervisor")
            .arg(cleanup_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Io {
                what: "starting the test cluster's supervisor (/bin/sh)".to_string(),
                source,
            })?;
        let stdin = supervisor.stdin.take();
        Ok(ProcessGroup {
            supervisor,
            supervisor_stdin: Mutex::new(stdin),
            components: Mutex::new(Vec::new()),
            log_dir: log_dir.to_path_buf(),
        })
    }

    /// Starts a component in the group with stdout and stderr going to `<log_dir>/<name>.log`.
    pub(crate) fn spawn(&self, name: &'static str, mut command: Command) -> Result<(), Error> {
        use std::os::unix::process::CommandExt as _;
        let log = self.log_dir.join(format!("{name}.log"));
        let io = |what: String| move |source| Error::Io { what, source };
        let out = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        let pgid = self.supervisor.id();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(i32::try_from(pgid).unwrap_or(0))
            .spawn()
            .map_err(io(format!("starting {name} ({:?})", command.get_program())))?;
        // Tell the supervisor first, so that even a crash right now cleans the child up.
        let mut stdin = self
            .supervisor_stdin
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(pipe) = stdin.as_mut() {
            let _ = writeln!(pipe, "{}", child.id());
        }
        drop(stdin);
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Component { name, child, log });
        Ok(())
    }

    /// The first component that has exited, as an error with its log tail.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        for component in components.iter_mut() {
            if let Ok(Some(status)) = component.child.try_wait() {
                return Err(Error::ComponentExited {
                    component: component.name,
                    status: status.to_string(),
                    log: component.log.clone(),
                    tail: log_tail(&component.log, 30),
                });
            }
        }
        Ok(())
    }

    /// The log file of a component.
    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Stops everything: kills the components in reverse start order (clients before the API
    /// server before etcd) and reaps them, then lets the supervisor remove the directory.
    pub(crate) fn shutdown(&mut self) {
        let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        for component in components.iter_mut().rev() {
            let _ = component.child.kill();
            let _ = component.child.wait();
        }
        components.clear();
        drop(components);
        let stdin = self
            .supervisor_stdin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(stdin);
        let _ = self.supervisor.wait();
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The last `lines` lines of a log file (or why it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
