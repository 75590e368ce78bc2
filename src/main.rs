//! The `deploy` binary: parse, run, print the error, exit with a documented
//! status.

use std::process::ExitCode;

use clap::Parser;

use deploy::cli::Cli;
use deploy::error::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are answers; anything else is a usage error
        // (64, EX_USAGE), never 2, which means "changes pending" to CI
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let (root, json) = (cli.root(), cli.json());
    deploy::report::set_verbosity(cli.verbosity());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match rt {
        Ok(rt) => rt.block_on(deploy::commands::run(cli)),
        Err(e) => Err(deploy::error::Error::Usage(format!("cannot start the runtime: {e}"))),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                deploy::report::error_json(&e, &root);
            }
            deploy::report::error(&e, &root);
            ExitCode::from(exit::ERROR)
        }
    }
}
