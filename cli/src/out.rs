//! Standard output that ends quietly when its reader is gone. `tongban case list | head` closes
//! the pipe after ten lines; std's `println!` then panics with a backtrace. Every `println!` in
//! this crate is this module's (the macro in `main.rs` shadows std's), and so are the raw writes
//! of SVG and JSON-LD (the crate writes no `print!`): a closed pipe ends the command with success and no message, as
//! the reader has what it asked for; any other write error ends it with one sentence.
//!
//! Resetting SIGPIPE to its default would need `unsafe` (forbidden in this workspace) and would
//! also kill the demo's and bench's in-process nodes on a peer's closed socket.

use std::fmt;
use std::io::{self, Write};
use std::process;

/// What a failed write to standard output means for the command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The reader went away (`head` has its lines): stop, successfully and quietly.
    ByReader,
    /// Anything else (a full disk behind a redirection, say): stop and say so.
    Failed(String),
}

/// Writes `args` (and a newline when `newline`) to `out`, telling a closed pipe from a failure.
pub(crate) fn write_to(out: &mut impl Write, args: fmt::Arguments<'_>, newline: bool) -> Result<(), Closed> {
    let written = out
        .write_fmt(args)
        .and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    written.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => Closed::ByReader,
        _ => Closed::Failed(e.to_string()),
    })
}

/// Ends the process as a failed write to standard output calls for.
fn end(closed: Closed) -> ! {
    match closed {
        Closed::ByReader => process::exit(0),
        Closed::Failed(why) => {
            eprintln!("error: cannot write to standard output: {why}");
            process::exit(1)
        }
    }
}

/// `println!`: one line to standard output.
pub(crate) fn line(args: fmt::Arguments<'_>) {
    if let Err(closed) = write_to(&mut io::stdout().lock(), args, true) {
        end(closed);
    }
}

/// Raw bytes (an SVG, a JSON-LD document) to standard output, flushed.
pub(crate) fn bytes(data: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
        end(match e.kind() {
            io::ErrorKind::BrokenPipe => Closed::ByReader,
            _ => Closed::Failed(e.to_string()),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A writer whose reader is gone, or whose disk is full.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_told_apart_from_a_failed_write() {
        let mut buffer = Vec::new();
        write_to(&mut buffer, format_args!("水寨镇 {}", 441424100), true).unwrap();
        write_to(&mut buffer, format_args!("x"), false).unwrap();
        assert_eq!(String::from_utf8(buffer).unwrap(), "水寨镇 441424100\nx");
        let closed = write_to(&mut Failing(io::ErrorKind::BrokenPipe), format_args!("a"), true);
        assert_eq!(closed, Err(Closed::ByReader));
        let failed = write_to(&mut Failing(io::ErrorKind::StorageFull), format_args!("a"), true);
        assert!(matches!(failed, Err(Closed::Failed(_))), "{failed:?}");
    }
}
