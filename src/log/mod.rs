//! Structured logs on stderr, shared by both binaries.
//!
//! Every line carries `ts`, `level`, a stable `event` name, `msg`, and the event's own
//! fields. Events are emitted with `tracing` macros, e.g.
//! `info!(event = "hook.start", path = %p, "running boot hook")`. Each line is written with
//! a single `write(2)` so it never interleaves with the child's output on the same stream;
//! [`sink`] decides how, so that the supervisor never blocks on a reader.

mod sink;

pub use sink::{flush, pending_fd, shutdown, QUEUE_MAX};

use serde_json::Value;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

// clap's ValueEnum is for sandboxctl's command line; the supervisor's reads `NAMES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Text,
}

impl Format {
    pub const NAMES: [(&'static str, Format); 2] = [("json", Format::Json), ("text", Format::Text)];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const NAMES: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    fn filter(self) -> LevelFilter {
        use LevelFilter as F;
        match self {
            LogLevel::Error => F::ERROR,
            LogLevel::Warn => F::WARN,
            LogLevel::Info => F::INFO,
            LogLevel::Debug => F::DEBUG,
            LogLevel::Trace => F::TRACE,
        }
    }
}

/// Installs the global subscriber with blocking writes to stderr: for the command-line
/// tools (`sandboxctl`, `supervisor check`), which wait for their terminal like any other.
pub fn init(format: Format, level: LogLevel) {
    sink::init_plain(format);
    install(format, level);
}

/// Installs the global subscriber for the supervisor's event loop: stderr is written without
/// ever blocking (see [`sink`]); the loop polls [`pending_fd`] and calls [`flush`]. Call once,
/// early in `main`, and [`shutdown`] before exiting.
pub fn init_nonblocking(format: Format, level: LogLevel) {
    let fallback = sink::init_nonblocking(format);
    install(format, level);
    if let Some(why) = fallback {
        tracing::warn!(event = "log.fallback", error = %why,
            "stderr is written by a helper thread, so a stalled log reader cannot block the supervisor");
    }
}

fn install(format: Format, level: LogLevel) {
    let _ = tracing::subscriber::set_global_default(LineSubscriber {
        format,
        max: level.filter(),
    });
}

/// The `log.dropped` line, rendered by the sink itself (it cannot log through tracing while
/// it holds its own lock).
fn dropped_line(format: Format, count: u64) -> Vec<u8> {
    let f = Fields {
        event: Some("log.dropped".into()),
        msg: Some("log lines were dropped while stderr was not being read".into()),
        rest: vec![("count".into(), count.into())],
    };
    let mut line = render(format, "warn", "log", f);
    line.push('\n');
    line.into_bytes()
}

/// The whole subscriber: a level filter and one line per event. No spans are used, so
/// there is no span registry (tracing-subscriber's zeroed a 32 KiB slab at start, issue 12).
struct LineSubscriber {
    format: Format,
    max: LevelFilter,
}

impl Subscriber for LineSubscriber {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are never entered or recorded; every span gets the same inert id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        let mut line = render(self.format, level_str(meta.level()), meta.target(), f);
        line.push('\n');
        sink::push(line.into_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields {
    event: Option<String>,
    msg: Option<String>,
    /// Other fields, in the order the call site wrote them.
    rest: Vec<(String, Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("event", Value::String(s)) => self.event = Some(s),
            ("message", Value::String(s)) => self.msg = Some(s),
            (name, v) => {
                self.rest.push((name.to_owned(), v));
            }
        }
    }
}

fn level_str(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One log line, without the newline. Events without an `event` field are named by target.
fn render(format: Format, level: &str, target: &str, f: Fields) -> String {
    let ts = crate::contract::time::now_rfc3339();
    let name = f.event.unwrap_or_else(|| target.to_owned());
    match format {
        Format::Json => {
            // Fixed keys first, in a fixed order, so the lines read well and diff well.
            let mut s = String::with_capacity(128);
            s.push_str("{\"ts\":");
            s.push_str(&Value::from(ts).to_string());
            s.push_str(",\"level\":\"");
            s.push_str(level);
            s.push_str("\",\"event\":");
            s.push_str(&Value::from(name).to_string());
            if let Some(m) = f.msg {
                s.push_str(",\"msg\":");
                s.push_str(&Value::from(m).to_string());
            }
            for (k, v) in f.rest {
                let _ = write!(s, ",{}:{}", Value::from(k), v);
            }
            s.push('}');
            s
        }
        Format::Text => {
            let mut s = format!("{ts} {:5} {name}", level.to_uppercase());
            if let Some(m) = f.msg {
                let _ = write!(s, " {m}");
            }
            for (k, v) in f.rest {
                match v {
                    Value::String(v) => write!(s, " {k}={v:?}"),
                    v => write!(s, " {k}={v}"),
                }
                .ok();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_fixed_keys_first() {
        let f = Fields {
            event: Some("hook.output".into()),
            msg: Some("hook output".into()),
            rest: vec![("stream".into(), "stdout".into()), ("n".into(), 3.into())],
        };
        let line = render(Format::Json, "info", "t", f);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "hook.output");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "hook output");
        assert_eq!(v["stream"], "stdout");
        assert_eq!(v["n"], 3);
        assert!(line.starts_with("{\"ts\":\""), "{line}");
    }
}
