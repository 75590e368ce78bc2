//! One module per command: each wires the stages together for its command
//! and hands what it has to say to `report`.

mod deploy;
mod facts;
mod fanout;
mod history;
pub(crate) mod import;
mod introspect;
mod render;
mod rollback;
mod saved;
mod secrets;
mod status;
mod toggle;
mod unlock;
pub(crate) mod vault;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Run the command line; its exit status.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.resolve()? {
        Command::Deploy(args) => deploy::deploy(args).await,
        Command::ToggleStatus(args, name) => toggle::toggle_status(args, &name).await,
        Command::Status(args) => status::host_status(args).await,
        Command::Render { args, host, out, force, facts } => render::render(&args, host, &out, force, facts.as_deref()),
        Command::Facts { args, host } => facts::facts(args, &host).await,
        Command::Vars { args, host, names, origin, show_secrets } => {
            introspect::vars(&args, &host, &names, origin, show_secrets)
        }
        Command::Inventory { args, list } => introspect::inventory(&args, list),
        Command::PlanList { args, host, facts } => introspect::plan_list(&args, &host, facts.as_deref()),
        Command::Completions(shell) => {
            crate::report::raw(&crate::cli::completions(shell));
            Ok(crate::error::exit::OK)
        }
        Command::History(args) => history::history(args).await,
        Command::Apply { args, file } => {
            let (args, expect) = saved::load(&file, args)?;
            deploy::deploy(crate::engine::DeployArgs { expect: Some(expect), ..args }).await
        }
        Command::Rollback { args, to, force } => rollback::rollback(args, to, force).await,
        Command::Import(a) => import::import(a),
        Command::Man => {
            crate::report::raw(&crate::cli::man_page());
            Ok(crate::error::exit::OK)
        }
        Command::Unlock { args, host } => unlock::unlock(&args, &host).await,
        Command::Secrets(cmd, keys) => secrets::secrets(cmd, &keys).await,
    }
}
