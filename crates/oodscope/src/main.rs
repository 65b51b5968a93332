//! oodscope binary: parses the command line and runs the command; errors end in one line and exit 1,
//! a run stopped by SIGINT or SIGTERM exits 130 or 143 (`serve` drains its requests and exits 0).

mod cli;
mod train;

use clap::Parser;
use cli::{
    Cli, Command, check_command, compare_command, detector_command, fit_command, fit_merge_command, merge_command,
    methods_command, preprocess_command, score_command, train_command, tune_command,
};

fn main() {
    oodscope_engine::alloc::keep_tensor_buffers_in_the_heap();
    let cli = Cli::try_parse().unwrap_or_else(|err| {
        use clap::error::ErrorKind;
        if matches!(
            err.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            err.exit();
        }
        // One line, as every other fatal error: the first line of clap's message.
        let rendered = err.render().to_string();
        let first = rendered
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid arguments");
        eprintln!("{} (see oodscope --help)", first.trim());
        std::process::exit(2);
    });
    // Before any tch call: libtorch decides once whether CUDA exists.
    oodscope_engine::torch_libs::load_cuda_or_warn();
    // The long commands stop at the next batch on SIGINT or SIGTERM (from the start: the model's
    // loading and the folders' listing come before the first batch); `serve` drains instead.
    if cli.command.as_ref().is_some_and(Command::stops_at_the_next_batch) {
        cli::interrupt_flag();
    }
    // Commands whose output is read by pipes: a closed pipe ends them quietly.
    if cli.command.as_ref().is_some_and(Command::prints_for_pipes) {
        cli::signals::end_quietly_on_closed_pipe();
    }
    let result = match &cli.command {
        Some(Command::Score(args)) => score_command(args),
        Some(Command::Tune(args)) => tune_command(args),
        Some(Command::Compare(args)) => compare_command(args),
        Some(Command::Train(args)) => train_command(args),
        Some(Command::Methods(args)) => methods_command(args),
        Some(Command::Fit(args)) => fit_command(args),
        Some(Command::FitMerge(args)) => fit_merge_command(args),
        Some(Command::Merge(args)) => merge_command(args),
        Some(Command::Preprocess(args)) => preprocess_command(args),
        Some(Command::Detector(args)) => detector_command(args),
        // `serve` handles SIGTERM and SIGINT itself: it drains the accepted requests and exits 0.
        Some(Command::Serve(args)) => cli::serve::serve_command(args),
        Some(Command::Check(args)) => match check_command(args) {
            Ok(true) if args.fail_on_ood => std::process::exit(cli::check::OOD_EXIT),
            other => other.map(|_| ()),
        },
        None if oodscope_gui::has_display() => oodscope_gui::run_gui(&cli.gui.startup_options()).map_err(Into::into),
        None if cli.gui.watch.is_some() => Err(anyhow::anyhow!(
            "--watch needs the window, and there is no display (DISPLAY / WAYLAND_DISPLAY unset): read the server's /metrics or /oodscope/v1/watch with curl instead"
        )),
        None if cli.gui.results.is_some() => {
            eprintln!("oodscope: no display (DISPLAY / WAYLAND_DISPLAY unset): printing the results file's metrics");
            cli.gui.results.as_deref().map_or(Ok(()), cli::headless_results)
        }
        None => {
            eprintln!(
                "oodscope: no display (DISPLAY / WAYLAND_DISPLAY unset): running the headless demo report instead"
            );
            cli::headless_demo()
        }
    };
    if let Err(err) = result {
        // Stopped by a signal: its line is printed already; the shell's status says which.
        if let Some(signal) = cli::signals::received()
            && err
                .chain()
                .any(|e| matches!(e.downcast_ref(), Some(oodscope_engine::Error::Cancelled)))
        {
            std::process::exit(cli::signals::exit_code(signal));
        }
        let message = format!("{err:#}").replace('\n', " ");
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
