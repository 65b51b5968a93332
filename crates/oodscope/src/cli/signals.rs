//! SIGINT (Ctrl-C) and SIGTERM (as `timeout`, Slurm and Kubernetes send) during a long command: the
//! first says so in one line and raises the cancel flag the engine checks between batches, so the
//! command stops at the next batch and its writers remove their temporaries as they drop; `main`
//! then exits 130 (SIGINT) or 143 (SIGTERM). A second signal ends the process at once, with the
//! same code (its temporaries are then removed by the next run that writes the same files).
//!
//! `signal-hook` rather than `ctrlc`: it tells the two signals apart, and its iterator runs our
//! code on a thread of its own, where printing is allowed (it is not inside a signal handler).

use std::io::IsTerminal;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static CANCEL: AtomicBool = AtomicBool::new(false);
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Starts listening for SIGINT and SIGTERM (once per process) and returns the cancel flag they raise.
pub(crate) fn install() -> &'static AtomicBool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let listening = Signals::new([SIGINT, SIGTERM]).and_then(|mut signals| {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || signals.forever().for_each(on_signal))
        });
        if let Err(e) = listening {
            eprintln!("note: Ctrl-C and SIGTERM cannot be caught ({e}); they will end the run at once");
        }
    });
    &CANCEL
}

/// The first signal that arrived, if any.
pub(crate) fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// The shell's exit status for a run ended by `signal`: 128 + its number (130 SIGINT, 143 SIGTERM).
pub(crate) fn exit_code(signal: i32) -> i32 {
    128 + signal
}

fn on_signal(signal: i32) {
    // On a terminal the progress bar holds the line.
    let newline = if std::io::stderr().is_terminal() { "\n" } else { "" };
    let (said, again) = if signal == SIGINT {
        ("interrupted (SIGINT)", "Ctrl-C again")
    } else {
        ("terminated (SIGTERM)", "a second signal")
    };
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if CANCEL.swap(true, Ordering::SeqCst) {
        eprintln!("{newline}oodscope: {said} again: stopping now");
        // `_exit`: no destructor of libtorch's may run while another thread is inside it.
        signal_hook::low_level::exit(exit_code(signal));
    }
    eprintln!(
        "{newline}oodscope: {said}: stopping after this batch and removing temporary files ({again} stops at once)"
    );
}

/// Output into a closed pipe (`oodscope detector show X --json | head`) ends the process quietly,
/// as it does other Unix tools: Rust ignores SIGPIPE by default, and a print into a closed pipe then
/// panics. Not for `serve` or the window, whose sockets must survive a peer that went away.
pub(crate) fn end_quietly_on_closed_pipe() {
    // SAFETY: only restores the signal's default disposition; no handler of ours is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(super::exit_code(signal_hook::consts::SIGINT), 130);
        assert_eq!(super::exit_code(signal_hook::consts::SIGTERM), 143);
    }
}
