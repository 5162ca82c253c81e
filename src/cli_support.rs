//! Command-line plumbing both binaries share.
//!
//! - [`parse`]: `sandboxctl` parses with clap, with a help epilogue generated from the
//!   contract and clap's outcomes mapped onto its own exit-code table.
//! - [`Flag`] tables and [`parse_flags`]: the `supervisor` parses with lexopt, driven by one
//!   table entry per flag (name, value, default, help, setter). clap cost the supervisor
//!   ~120 µs, ~44 KiB of heap and ~0.4 MB of binary at every start (issue 12); a table keeps
//!   the help, the errors naming the flag and the did-you-mean suggestions in one place.
//! - [`parse_duration`]: `250ms`, `10s`, `5m`, `1h`, bounded by [`MAX_DURATION`].

use clap::{CommandFactory, FromArgMatches};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::time::Duration;

/// Parses the process arguments into `C`, with `epilogue` appended to `--help`. On
/// `--help`/`--version` returns `Err(0)`; on a usage error prints it and returns
/// `Err(usage_code)`.
pub fn parse<C: CommandFactory + FromArgMatches>(
    epilogue: String,
    usage_code: i32,
) -> Result<C, i32> {
    C::command()
        .after_long_help(epilogue)
        .try_get_matches()
        .and_then(|m| C::from_arg_matches(&m))
        .map_err(|e| {
            let _ = e.print();
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => usage_code,
            }
        })
}

// ----- durations ---------------------------------------------------------------------

/// The longest duration any flag accepts: 30 days. Longer values are refused when the
/// command line is parsed, so no deadline computed from a flag can overflow an `Instant`
/// (a 10^19-second `--ready-after` used to panic PID 1 after the child had started).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// Parses `250ms`, `10s`, `5m`, `1h`, or a bare number of seconds (`1.5`), at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| "not a duration: expected e.g. 500ms, 10s, 5m, 1h".to_owned())?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown duration unit {unit:?}: use ms, s, m or h")),
    };
    let secs = value * scale;
    // Compared as a float first: 400 nines parse to infinity, which no Duration holds.
    if secs.is_nan() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "longer than the maximum of {}h (30 days)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

// ----- flag tables -------------------------------------------------------------------

/// What a flag takes, and how it is stored into the arguments `T`.
pub enum Takes<T> {
    /// A switch: `--no-hook`.
    Switch(fn(&mut T)),
    /// A flag with a value: `--grace 10s` or `--grace=10s`. `default` is shown in `--help`
    /// and applied through `set` when the flag is not given, so the help cannot drift from
    /// the behaviour.
    Value {
        name: &'static str,
        default: Option<&'static str>,
        set: fn(&mut T, &OsStr) -> Result<(), String>,
    },
}

/// One long flag of a command line: one table entry is all a new flag needs.
pub struct Flag<T> {
    /// Without the leading `--`.
    pub long: &'static str,
    pub takes: Takes<T>,
    pub help: &'static str,
    /// Another flag of the same table that must not be given together with this one.
    pub conflicts: Option<&'static str>,
    /// May be given more than once (the setter accumulates).
    pub repeatable: bool,
}

impl<T> Flag<T> {
    pub const fn switch(long: &'static str, help: &'static str, set: fn(&mut T)) -> Flag<T> {
        Flag {
            long,
            takes: Takes::Switch(set),
            help,
            conflicts: None,
            repeatable: false,
        }
    }

    pub const fn value(
        long: &'static str,
        name: &'static str,
        default: Option<&'static str>,
        help: &'static str,
        set: fn(&mut T, &OsStr) -> Result<(), String>,
    ) -> Flag<T> {
        Flag {
            long,
            takes: Takes::Value { name, default, set },
            help,
            conflicts: None,
            repeatable: false,
        }
    }

    pub const fn conflicts_with(mut self, other: &'static str) -> Flag<T> {
        self.conflicts = Some(other);
        self
    }

    pub const fn repeatable(mut self) -> Flag<T> {
        self.repeatable = true;
        self
    }

    fn left_column(&self) -> String {
        match &self.takes {
            Takes::Switch(_) => format!("--{}", self.long),
            Takes::Value { name, .. } => format!("--{} <{name}>", self.long),
        }
    }
}

/// A command's help: what it is, how it is called, and what follows the flag list.
pub struct Spec<'a, T> {
    /// `supervisor`, `supervisor status`.
    pub name: &'a str,
    pub about: &'a str,
    /// Usage lines, without the `Usage:` prefix.
    pub usage: &'a [&'a str],
    /// `(name, about)` of subcommands, listed in the help.
    pub commands: &'a [(&'a str, &'a str)],
    /// `(name, about)` of positional arguments, listed in the help.
    pub arguments: &'a [(&'a str, &'a str)],
    pub flags: &'a [Flag<T>],
    /// Printed after the flag list (e.g. the exit-code table).
    pub epilogue: &'a str,
}

/// Why parsing stopped before producing arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--help`/`-h`: print the help (stdout), exit 0.
    Help(String),
    /// `--version`/`-V`: print the version (stdout), exit 0.
    Version(String),
    /// A usage error, already formatted with the usage lines (stderr, the usage exit code).
    Usage(String),
}

impl Stop {
    /// The text that would be printed.
    pub fn text(&self) -> &str {
        match self {
            Stop::Help(s) | Stop::Version(s) | Stop::Usage(s) => s,
        }
    }

    /// Prints the outcome where it belongs and returns the exit code.
    pub fn report(self, usage_code: i32) -> i32 {
        use std::io::Write as _;
        match self {
            Stop::Help(s) | Stop::Version(s) => {
                let _ = std::io::stdout().write_all(s.as_bytes());
                0
            }
            Stop::Usage(s) => {
                let _ = std::io::stderr().write_all(s.as_bytes());
                usage_code
            }
        }
    }
}

impl<T> Spec<'_, T> {
    pub fn help(&self) -> String {
        let mut s = format!("{}\n\nUsage: {}\n", self.about, self.usage[0]);
        for u in &self.usage[1..] {
            let _ = writeln!(s, "       {u}");
        }
        let section = |s: &mut String, title: &str, rows: Vec<(String, String)>| {
            if rows.is_empty() {
                return;
            }
            let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
            let _ = write!(s, "\n{title}:\n");
            for (l, h) in rows {
                let _ = writeln!(s, "  {l:width$}  {h}");
            }
        };
        let pairs = |r: &[(&str, &str)]| -> Vec<(String, String)> {
            r.iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect()
        };
        section(&mut s, "Commands", pairs(self.commands));
        section(&mut s, "Arguments", pairs(self.arguments));
        let mut options: Vec<(String, String)> = self
            .flags
            .iter()
            .map(|f| {
                let mut h = f.help.to_owned();
                if let Takes::Value {
                    default: Some(d), ..
                } = f.takes
                {
                    let _ = write!(h, " [default: {d}]");
                }
                (format!("    {}", f.left_column()), h)
            })
            .collect();
        options.push(("-h, --help".into(), "Print help".into()));
        options.push(("-V, --version".into(), "Print version".into()));
        section(&mut s, "Options", options);
        if !self.epilogue.is_empty() {
            let _ = write!(s, "\n{}\n", self.epilogue);
        }
        s
    }

    /// A usage error: the message, the usage lines and where to read more.
    pub fn usage_error(&self, msg: &str) -> Stop {
        let mut s = format!("error: {msg}\n\nUsage: {}\n", self.usage[0]);
        for u in &self.usage[1..] {
            let _ = writeln!(s, "       {u}");
        }
        let _ = writeln!(s, "\nFor more information, try '{} --help'.", self.name);
        Stop::Usage(s)
    }

    fn find(&self, long: &str) -> Option<&Flag<T>> {
        self.flags.iter().find(|f| f.long == long)
    }

    /// The known flag closest to `given` (a typo, or a unique prefix), for "did you mean".
    fn suggest(&self, given: &str) -> Option<&'static str> {
        let names = self.flags.iter().map(|f| f.long).chain(["help", "version"]);
        let mut prefixed = names.clone().filter(|n| n.starts_with(given));
        if let (Some(only), None) = (prefixed.next(), prefixed.next()) {
            if !given.is_empty() {
                return Some(only);
            }
        }
        names
            .map(|n| (edit_distance(given, n), n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }

    fn unknown(&self, given: &str) -> Stop {
        let shown = given.trim_start_matches('-');
        match self.suggest(shown) {
            Some(s) => self.usage_error(&format!("unknown flag {given} (did you mean --{s}?)")),
            None => self.usage_error(&format!("unknown flag {given}")),
        }
    }
}

/// Parses `args` (without the program name) into `T` by the table of `spec`. Positional
/// arguments are refused with `positional` as the explanation; every flag given twice,
/// every conflict and every bad value is a usage error naming the flag.
pub fn parse_flags<T: Default>(
    spec: &Spec<'_, T>,
    args: Vec<OsString>,
    positional: &dyn Fn(&OsStr) -> String,
    version: &str,
) -> Result<T, Stop> {
    let mut out = T::default();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut p = lexopt::Parser::from_args(args);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(spec.usage_error(&lexopt_message(e))),
        };
        let long = match arg {
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                return Err(Stop::Help(spec.help()))
            }
            lexopt::Arg::Long("version") | lexopt::Arg::Short('V') => {
                return Err(Stop::Version(format!("{version}\n")))
            }
            lexopt::Arg::Short(c) => return Err(spec.unknown(&format!("-{c}"))),
            lexopt::Arg::Value(v) => return Err(spec.usage_error(&positional(&v))),
            lexopt::Arg::Long(l) => l.to_owned(),
        };
        let Some(flag) = spec.find(&long) else {
            return Err(spec.unknown(&format!("--{long}")));
        };
        if seen.contains(&flag.long) && !flag.repeatable {
            return Err(spec.usage_error(&format!("--{} was given more than once", flag.long)));
        }
        seen.push(flag.long);
        match &flag.takes {
            Takes::Switch(set) => set(&mut out),
            Takes::Value { name, set, .. } => {
                // `--flag=value` may hold anything; a separate value that looks like a flag
                // is a forgotten value (`--hook --no-policy`), not a path named "--no-policy".
                let v = match p.optional_value() {
                    Some(v) => v,
                    None => match p.value() {
                        Ok(v) if !v.as_encoded_bytes().starts_with(b"-") => v,
                        Ok(v) => {
                            return Err(spec.usage_error(&format!(
                                "--{} needs a value <{name}>, but the next argument is {:?}",
                                flag.long, v
                            )))
                        }
                        Err(_) => {
                            return Err(spec
                                .usage_error(&format!("--{} needs a value <{name}>", flag.long)))
                        }
                    },
                };
                set(&mut out, &v).map_err(|e| {
                    spec.usage_error(&format!(
                        "invalid value {:?} for --{}: {e}",
                        v.to_string_lossy(),
                        flag.long
                    ))
                })?;
            }
        }
    }
    for flag in spec.flags {
        if let Some(other) = flag.conflicts {
            if seen.contains(&flag.long) && seen.contains(&other) {
                return Err(
                    spec.usage_error(&format!("--{} cannot be used with --{other}", flag.long))
                );
            }
        }
        if let Takes::Value {
            default: Some(d),
            set,
            ..
        } = flag.takes
        {
            if !seen.contains(&flag.long) {
                set(&mut out, OsStr::new(d))
                    .map_err(|e| spec.usage_error(&format!("default of --{}: {e}", flag.long)))?;
            }
        }
    }
    Ok(out)
}

fn lexopt_message(e: lexopt::Error) -> String {
    match e {
        lexopt::Error::UnexpectedValue { option, value } => {
            format!(
                "{option} takes no value (got {:?})",
                value.to_string_lossy()
            )
        }
        other => other.to_string(),
    }
}

// ----- value parsers, for the setters of flag tables -----------------------------------

/// A non-empty path.
pub fn path_value(v: &OsStr) -> Result<std::path::PathBuf, String> {
    if v.is_empty() {
        return Err("expected a path".into());
    }
    Ok(v.into())
}

pub fn duration_value(v: &OsStr) -> Result<Duration, String> {
    parse_duration(v.to_str().ok_or("not UTF-8")?)
}

pub fn count_value(v: &OsStr) -> Result<u32, String> {
    let s = v.to_str().ok_or("not UTF-8")?;
    s.parse()
        .map_err(|_| format!("expected a whole number from 0 to {}", u32::MAX))
}

/// One of `choices` by name.
pub fn choice_value<E: Copy>(v: &OsStr, choices: &[(&str, E)]) -> Result<E, String> {
    let s = v.to_str().unwrap_or("");
    choices
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("expected one of {}", names.join(", "))
        })
}

/// Levenshtein distance, for suggestions among a few dozen short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("720h"), Ok(MAX_DURATION));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        for huge in [
            "721h",
            "10000000000000000000",
            &"9".repeat(400),
            "99999999999999999999h",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("maximum"), "{huge}: {e}");
        }
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("grac", "grace"), 1);
        assert_eq!(edit_distance("hook-timout", "hook-timeout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
