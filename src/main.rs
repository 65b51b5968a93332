//! oodscope binary: parses the command line and runs the command; errors end in one line and exit 1.

use clap::Parser;
use oodscope::cli::{Cli, Command, score_command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Score(args)) => score_command(args),
        None => {
            eprintln!("oodscope: the GUI is not built yet; use `oodscope score --help`");
            Ok(())
        }
    };
    if let Err(err) = result {
        let message = format!("{err:#}").replace('\n', " ");
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
