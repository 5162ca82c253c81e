//! A minimal QMP client: connect to QEMU's monitor socket, leave capabilities negotiation,
//! run a command, read its answer (skipping asynchronous events). Every read and write has
//! a deadline: QEMU serves one QMP client at a time, and a wedged QEMU must not hang us.

use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(sock: &Path, timeout: Duration) -> io::Result<Qmp> {
        let s = UnixStream::connect(sock)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let writer = s.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(s),
            writer,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        // QMP lines are short; a runaway one is not QEMU.
        let n = (&mut self.reader).take(1 << 20).read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed"));
        }
        serde_json::from_str(&line).map_err(|e| io::Error::other(format!("QMP: {e}")))
    }

    /// Runs `cmd`; returns its `return` value, or an error with QEMU's `error.desc`.
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> io::Result<Value> {
        let mut req = json!({ "execute": cmd });
        if let Some(a) = args {
            req["arguments"] = a;
        }
        let mut line = req.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        for _ in 0..1000 {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(io::Error::other(format!(
                    "QMP {cmd}: {}",
                    e.get("desc").and_then(Value::as_str).unwrap_or("error")
                )));
            }
            // An event (SHUTDOWN, RESET…): keep reading for our answer.
        }
        Err(io::Error::other(format!("QMP {cmd}: no answer")))
    }

    /// Presses Ctrl-Alt-Del on the guest's keyboard: the supervisor (which disabled the
    /// kernel's own reboot on it) gets SIGINT, a graceful stop.
    pub fn ctrl_alt_del(&mut self) -> io::Result<()> {
        let keys: Vec<Value> = ["ctrl", "alt", "delete"]
            .iter()
            .map(|k| json!({"type": "qcode", "data": k}))
            .collect();
        self.execute("send-key", Some(json!({ "keys": keys })))
            .map(drop)
    }

    /// QEMU's run state: `running`, `paused`, `shutdown`, `guest-panicked`, …
    pub fn status(&mut self) -> io::Result<String> {
        let r = self.execute("query-status", None)?;
        Ok(r.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Ends QEMU at once (no notice to the guest).
    pub fn quit(&mut self) -> io::Result<()> {
        self.execute("quit", None).map(drop)
    }
}
