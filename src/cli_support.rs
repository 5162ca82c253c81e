//! Command-line plumbing both binaries share: parse with a help epilogue generated from
//! the contract, and map clap's outcomes onto each binary's own exit-code table.

use clap::{CommandFactory, FromArgMatches};

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
