//! How every mxrep binary reports a failure: one line on stderr and a non-zero exit (2 for a bad
//! command line, 1 for anything else), never a backtrace. Help and version print whole.

/// The one line a clap error is reduced to, or `None` for help/version output.
pub fn clap_error_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => None,
        _ => {
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            Some(format!("error: {}", line.trim_start_matches("error: ")))
        }
    }
}

/// Prints a clap error as one line (help and version are printed whole) and exits.
pub fn exit_on_clap_error(e: clap::Error) -> ! {
    match clap_error_line(&e) {
        None => e.exit(),
        Some(line) => {
            eprintln!("{line}");
            std::process::exit(2);
        }
    }
}

/// Prints an error chain on one line and exits with status 1.
pub fn exit_on_error(e: impl Into<anyhow::Error>) -> ! {
    eprintln!("error: {:#}", e.into());
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Args {
        #[arg(long)]
        port: u16,
    }

    #[test]
    fn one_line_errors_and_whole_help() {
        let e = Args::try_parse_from(["x", "--port", "banana"]).unwrap_err();
        let line = clap_error_line(&e).unwrap();
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "{line}"
        );
        assert!(line.contains("banana"), "{line}");
        let help = Args::try_parse_from(["x", "--help"]).unwrap_err();
        assert_eq!(clap_error_line(&help), None);
    }
}
