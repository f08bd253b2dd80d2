//! Printing to standard output from the command-line tools, `head`-friendly: when the reader
//! goes away (a closed pipe), the tool stops quietly with exit status 0, the convention of tools
//! whose output is often cut short on purpose (`margin-replay state | head -1`).

use std::io::Write;

/// Writes a line to standard output; a closed pipe ends the process with status 0, any other
/// write error with status 1.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.write_all(b"\n")) {
        quit(&e);
    }
}

/// Ends the process after a failed write to standard output.
pub fn quit(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("cannot write to standard output: {e}");
    std::process::exit(1);
}

/// `say!("...", args)`: `println!` that stops quietly on a closed pipe ([`line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::stdout::line(format_args!($($arg)*)) };
}
