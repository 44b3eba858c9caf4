//! How both binaries report a failure: one line on stderr, a non-zero exit, never a backtrace.

/// Prints a clap error as one line (help and version are printed whole) and exits.
pub fn exit_on_clap_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let line = line.trim_start_matches("error: ");
            eprintln!("error: {line}");
            std::process::exit(2);
        }
    }
}

/// Prints an error chain on one line and exits with status 1.
pub fn exit_on_error(e: anyhow::Error) -> ! {
    eprintln!("error: {e:#}");
    std::process::exit(1);
}
