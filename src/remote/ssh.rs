//! SSH transport: the system ssh client through the openssh crate, one
//! multiplexed master per host, so users keep their ~/.ssh/config, agent and
//! ProxyJump. Host keys are checked strictly. Remote commands are argument
//! lists (`sh -c SCRIPT NAME ARGS...`, each argument escaped by openssh),
//! never strings pasted into a shell.

use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::render::Connection;

/// Connection settings from the command line.
#[derive(Debug, Clone)]
pub(crate) struct SshOptions {
    /// Accept (and record) the key of a host never seen before.
    pub(crate) accept_new_host_keys: bool,
    /// Connect timeout per attempt.
    pub(crate) connect_timeout: Duration,
    /// Attempts for failures that can be transient.
    pub(crate) attempts: u32,
    /// Hosts worked on at once (connect, probe, apply); the others wait.
    pub(crate) parallel: usize,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions { accept_new_host_keys: false, connect_timeout: Duration::from_secs(5), attempts: 3, parallel: 32 }
    }
}

/// An open connection to one host.
pub(crate) struct Conn {
    /// Inventory name, for messages.
    pub(crate) host: String,
    session: Session,
    /// Set when ansible_port refused and deploy_fallback_port answered.
    pub(crate) fallback: Option<u16>,
}

/// The output of a remote command.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status (None when killed by a signal).
    pub(crate) code: Option<i32>,
    /// Standard output.
    pub(crate) stdout: Vec<u8>,
    /// Standard error.
    pub(crate) stderr: Vec<u8>,
}

/// Why a connection failed, in words, and whether trying again can help.
pub(crate) fn diagnose(stderr: &str) -> (String, bool) {
    let s = stderr.trim();
    let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s).trim();
    if s.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || s.contains("Host key for") && s.contains("has changed") {
        return (
            "the host key has CHANGED since it was recorded in known_hosts; refusing to connect. \
             If the host was reinstalled, verify the new key fingerprint out of band (provider console) \
             and then remove the old entry with `ssh-keygen -R HOST`; otherwise this may be an attack"
                .into(),
            false,
        );
    }
    if s.contains("Host key verification failed")
        || s.contains("No ED25519 host key is known")
        || s.contains("host key is known")
    {
        return (
            "the host key is not in known_hosts; verify it and add it (ssh once by hand), or pass --accept-new-host-keys".into(),
            false,
        );
    }
    if s.contains("Could not resolve hostname") {
        return (format!("the host name does not resolve ({last})"), false);
    }
    if s.contains("Permission denied") {
        return (
            format!("authentication failed ({last}); check ansible_user, the key (ssh-add -l) and authorized_keys"),
            false,
        );
    }
    if s.contains("Connection refused") {
        return ("connection refused: nothing listens on the SSH port (sshd down, wrong ansible_port, or a firewall rejecting)".into(), true);
    }
    if s.contains("timed out") || s.contains("Operation timed out") {
        return (
            "connection timed out: the host does not answer (down, wrong address, or a firewall dropping packets)"
                .into(),
            true,
        );
    }
    if s.contains("Connection closed by") || s.contains("kex_exchange_identification") || s.contains("Connection reset")
    {
        return (
            format!("the server closed the connection right after it opened ({last}); often fail2ban, MaxStartups or an AllowUsers rule"),
            true,
        );
    }
    if s.contains("No route to host") || s.contains("Network is unreachable") {
        return (format!("no route to the host ({last})"), true);
    }
    (format!("ssh failed: {}", if last.is_empty() { "no error output" } else { last }), true)
}

fn connect_error(host: &str, e: openssh::Error) -> Error {
    let text = match &e {
        openssh::Error::Connect(io) => io.to_string(),
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(x) = src {
                s.push_str(": ");
                s.push_str(&x.to_string());
                src = x.source();
            }
            s
        }
    };
    let (message, retryable) = diagnose(&text);
    Error::Connect { host: host.into(), message, retryable }
}

/// Open the multiplexed master connection, retrying transient failures a
/// bounded number of times with growing pauses (1s, 3s): hammering a host
/// that closes connections only gets the address banned (fail2ban).
pub(crate) async fn connect(host: &str, c: &Connection, opts: &SshOptions) -> Result<Conn> {
    connect_showing(host, c, opts, None, None).await
}

/// The first attempt of a connection, started before the render finishes
/// (the handshake is most of a no-op's time, and it needs nothing the
/// render makes). `connect_showing` takes it over: its result is attempt 1.
pub(crate) struct FirstAttempt(tokio::task::JoinHandle<Result<Conn>>);

impl FirstAttempt {
    /// Start attempt 1 on ansible_port, in the background.
    pub(crate) fn start(host: &str, c: &Connection, opts: &SshOptions) -> FirstAttempt {
        let (host, c, opts) = (host.to_string(), c.clone(), opts.clone());
        FirstAttempt(tokio::spawn(async move {
            check_config(&host, &c)?;
            try_once(&host, &builder(&c, c.port, &opts), &c.address).await
        }))
    }

    async fn result(self, host: &str) -> Result<Conn> {
        self.0.await.unwrap_or_else(|e| {
            Err(Error::Connect { host: host.into(), message: format!("connecting failed: {e}"), retryable: true })
        })
    }

    /// Wait for the attempt (bounded by the connect timeout) and close what
    /// it opened: a master left behind would persist.
    pub(crate) async fn close(self) {
        if let Ok(Ok(conn)) = self.0.await {
            conn.close().await;
        }
    }
}

fn check_config(host: &str, c: &Connection) -> Result<()> {
    match c.ssh_config.as_ref().filter(|f| !f.is_file()) {
        // bad input, not a network failure to retry
        Some(f) => Err(Error::Connect {
            host: host.into(),
            message: format!("deploy_ssh_config {} does not exist; nothing was tried", f.display()),
            retryable: false,
        }),
        None => Ok(()),
    }
}

/// `connect`, saying each retry on `progress` (attempt and why); `first`,
/// when given, is attempt 1 on ansible_port, already under way.
pub(crate) async fn connect_showing(
    host: &str,
    c: &Connection,
    opts: &SshOptions,
    progress: Option<&crate::report::Progress>,
    first: Option<FirstAttempt>,
) -> Result<Conn> {
    let first = match first {
        Some(f) => Some(f.result(host).await),
        None => None,
    };
    if let Some(Err(e @ Error::Connect { retryable: false, .. })) = first {
        return Err(e);
    }
    check_config(host, c)?;
    match connect_port(host, c, c.port, opts, progress, first).await {
        Err(Error::Connect { message, retryable: true, .. }) if c.fallback_port.is_some() => {
            // sshd is still on its old port (refused, or dropped by a firewall
            // that does not open the new one yet): this deploy moves it
            let mut conn = connect_port(host, c, c.fallback_port, opts, progress, None).await.map_err(|e| match e {
                Error::Connect { host, message: m, retryable } => {
                    Error::Connect { host, message: format!("{message}; and on deploy_fallback_port: {m}"), retryable }
                }
                other => other,
            })?;
            conn.fallback = c.fallback_port;
            Ok(conn)
        }
        other => other,
    }
}

fn builder(c: &Connection, port: Option<u16>, opts: &SshOptions) -> SessionBuilder {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(if opts.accept_new_host_keys { KnownHosts::Add } else { KnownHosts::Strict });
    b.connect_timeout(opts.connect_timeout);
    b.server_alive_interval(Duration::from_secs(15));
    if let Some(p) = port {
        b.port(p);
    }
    if let Some(u) = &c.user {
        b.user(u.clone());
    }
    if let Some(k) = &c.key_file {
        b.keyfile(k);
    }
    if let Some(f) = &c.ssh_config {
        b.config_file(f);
    }
    b
}

async fn try_once(host: &str, b: &SessionBuilder, address: &str) -> Result<Conn> {
    match b.connect_mux(address).await {
        Ok(session) => Ok(Conn { host: host.into(), session, fallback: None }),
        Err(e) => Err(connect_error(host, e)),
    }
}

async fn connect_port(
    host: &str,
    c: &Connection,
    port: Option<u16>,
    opts: &SshOptions,
    progress: Option<&crate::report::Progress>,
    mut first: Option<Result<Conn>>,
) -> Result<Conn> {
    let b = builder(c, port, opts);
    let mut last = None;
    for attempt in 0..opts.attempts.max(1) {
        if attempt > 0 {
            if let (Some(p), Some(Error::Connect { message, .. })) = (progress, &last) {
                p.step(
                    host,
                    &format!("connecting, attempt {} of {}: the last one said: {message}", attempt + 1, opts.attempts),
                );
            }
            tokio::time::sleep(Duration::from_secs(if attempt == 1 { 1 } else { 3 })).await;
        }
        let result = match first.take() {
            Some(r) => r,
            None => try_once(host, &b, &c.address).await,
        };
        match result {
            Ok(conn) => return Ok(conn),
            Err(err) => {
                // with a fallback port, no answer is an answer: go there
                let retry = matches!(err, Error::Connect { retryable: true, .. }) && c.fallback_port.is_none();
                last = Some(err);
                if !retry {
                    break;
                }
            }
        }
    }
    let err = last.expect("at least one attempt");
    if let Error::Connect { host, message, retryable: true } = err {
        let n = opts.attempts.max(1);
        return Err(Error::Connect {
            host,
            message: format!("{message} (after {n} attempt{})", if n == 1 { "" } else { "s" }),
            retryable: true,
        });
    }
    Err(err)
}

/// Run `sh -c SCRIPT NAME ARGS...` over a NEW connection: multiplexing off
/// (`ControlMaster=no`, `ControlPath=none`), so neither our master nor one
/// from the user's ssh config can carry it. An established connection
/// survives a firewall change that blocks new ones; only a fresh connection
/// proves the next deploy will get in. Bounded by `limit`.
pub(crate) async fn run_fresh(
    host: &str,
    c: &Connection,
    opts: &SshOptions,
    name: &str,
    script: &str,
    args: &[&str],
    limit: Duration,
) -> Result<Output> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes"]);
    cmd.args([
        "-o",
        if opts.accept_new_host_keys { "StrictHostKeyChecking=accept-new" } else { "StrictHostKeyChecking=yes" },
    ]);
    cmd.arg("-o").arg(format!("ConnectTimeout={}", opts.connect_timeout.as_secs().max(1)));
    if let Some(f) = &c.ssh_config {
        cmd.arg("-F").arg(f);
    }
    if let Some(p) = c.port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(u) = &c.user {
        cmd.arg("-l").arg(u);
    }
    if let Some(k) = &c.key_file {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(k);
    }
    // ssh joins the remote command with spaces for the remote shell: quote each word
    let mut remote =
        vec!["sh".to_string(), "-c".into(), crate::util::shell_quote(script), crate::util::shell_quote(name)];
    remote.extend(args.iter().map(|a| crate::util::shell_quote(a)));
    cmd.arg("--").arg(&c.address).arg(remote.join(" "));
    // its own process group: a Ctrl-C on the terminal is ours to handle (we
    // let the confirmation finish), not the ssh client's to die of
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true).process_group(0);
    let out = match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Err(Error::Connect { host: host.into(), message: format!("cannot run ssh: {e}"), retryable: false })
        }
        Err(_) => {
            return Err(Error::Connect {
                host: host.into(),
                message: format!("a fresh ssh connection did not complete within {}s", limit.as_secs()),
                retryable: true,
            })
        }
    };
    // 255 is ssh's own failure: connecting, not the remote command
    if out.status.code() == Some(255) {
        let (message, retryable) = diagnose(&String::from_utf8_lossy(&out.stderr));
        return Err(Error::Connect { host: host.into(), message, retryable });
    }
    capture(host, name, &out.stdout);
    Ok(Output { code: out.status.code(), stdout: out.stdout, stderr: out.stderr })
}

/// With DEPLOY_CAPTURE_DIR set, keep what each host script printed, as
/// `HOST.NAME.N.out`: the test that checks the parsers' fixtures against
/// the scripts (tests/fixtures/remote/) captures real output this way.
fn capture(host: &str, name: &str, stdout: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("DEPLOY_CAPTURE_DIR") else { return };
    let n = N.fetch_add(1, Ordering::SeqCst);
    let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{host}.{name}.{n:03}.out")), stdout);
}

/// A command's output, or the error of an input that did not all go out
/// (the connection went away while it was being written).
pub(crate) fn all_sent(host: &str, name: &str, out: Output, sent: std::result::Result<(), String>) -> Result<Output> {
    match sent {
        Ok(()) => Ok(out),
        Err(e) => Err(Error::Remote {
            host: host.into(),
            message: format!("the connection was lost while sending data to {name} ({e})"),
        }),
    }
}

/// What a remote script reads on stdin.
pub(crate) enum Input<'a> {
    /// These bytes, or nothing.
    Bytes(Option<&'a [u8]>),
    /// What this writes, on a thread of its own, through a pipe.
    Stream(Box<dyn FnOnce(std::io::PipeWriter) -> std::result::Result<(), String> + Send>),
}

impl Conn {
    /// Run `sh -c SCRIPT NAME ARGS...` with `stdin` fed in, collecting output.
    pub(crate) async fn run(&self, name: &str, script: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        let (out, sent) = self.exec(name, script, args, Input::Bytes(stdin)).await?;
        all_sent(&self.host, name, out, sent)
    }

    /// Run `sh -c SCRIPT NAME ARGS...` with its stdin given by `input`,
    /// collecting output. Also returns how sending went: a stream's own
    /// error (a source that changed), or the connection's.
    pub(crate) async fn exec(
        &self,
        name: &str,
        script: &str,
        args: &[&str],
        input: Input<'_>,
    ) -> Result<(Output, std::result::Result<(), String>)> {
        let mut cmd = self.session.command("sh");
        cmd.arg("-c").arg(script).arg(name);
        for a in args {
            cmd.arg(a);
        }
        // the master is up, so a failure here is the connection going away
        // under the command (or the master being killed)
        let remote = |e: openssh::Error| Error::Remote {
            host: self.host.clone(),
            message: format!("the connection was lost while running {name} ({e})"),
        };
        let local = |e: std::io::Error| Error::Remote {
            host: self.host.clone(),
            message: format!("cannot make a pipe for {name}: {e}"),
        };
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
        let started = std::time::Instant::now();
        let (out, sent) = match input {
            Input::Bytes(stdin) => {
                cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
                let mut child = cmd.spawn().await.map_err(remote)?;
                let input = child.stdin().take();
                let data = stdin.unwrap_or_default();
                // Feed stdin while collecting output, so a large output cannot deadlock the upload.
                let write = async move {
                    if let Some(mut w) = input {
                        let r = w.write_all(data).await;
                        let _ = w.shutdown().await;
                        drop(w);
                        r.map_err(|e| e.to_string())
                    } else {
                        Ok(())
                    }
                };
                let (w, out) = tokio::join!(write, child.wait_with_output());
                (out.map_err(remote)?, w)
            }
            Input::Stream(produce) => {
                // the master reads the pipe itself: the upload never passes
                // through our memory whole
                let (rd, wr) = std::io::pipe().map_err(local)?;
                cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(rd)));
                let child = cmd.spawn().await.map_err(remote)?;
                // our copy of the read end goes, so a script that stops
                // reading gives the writer EPIPE, not a wait for ever
                drop(cmd);
                let writer = tokio::task::spawn_blocking(move || produce(wr));
                let out = child.wait_with_output().await.map_err(remote)?;
                let sent = writer.await.unwrap_or_else(|e| Err(format!("the upload's writer failed: {e}")));
                (out, sent)
            }
        };
        crate::report::command_ran(&self.host, name, started.elapsed(), out.status.code());
        capture(&self.host, name, &out.stdout);
        Ok((Output { code: out.status.code(), stdout: out.stdout, stderr: out.stderr }, sent))
    }

    /// Close the master connection.
    pub(crate) async fn close(self) {
        let _ = self.session.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnoses_in_words() {
        let (m, r) = diagnose(
            "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
        );
        assert!(m.contains("CHANGED") && !r, "{m}");
        let (m, r) = diagnose("ssh: connect to host 10.0.0.1 port 22: Connection refused");
        assert!(m.contains("refused") && r);
        let (m, _) = diagnose("kex_exchange_identification: Connection closed by remote host");
        assert!(m.contains("closed the connection right after"), "{m}");
        let (m, r) = diagnose("root@x: Permission denied (publickey).");
        assert!(m.contains("authentication failed") && !r);
        let (m, _) = diagnose("ssh: connect to host 192.0.2.1 port 22: Connection timed out");
        assert!(m.contains("timed out"));
    }
}
