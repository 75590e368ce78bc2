//! The `deploy` binary: parse, run, print the error, exit with a documented
//! status.

use std::process::ExitCode;

use clap::Parser;

use deploy::cli::Cli;
use deploy::error::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match rt {
        Ok(rt) => rt.block_on(deploy::commands::run(cli)),
        Err(e) => Err(deploy::error::Error::Usage(format!("cannot start the runtime: {e}"))),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            deploy::report::error(&e, &root);
            ExitCode::from(exit::ERROR)
        }
    }
}
