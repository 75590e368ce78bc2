//! The command line: clap definitions, resolved into a `Command` before any
//! work starts, so raw flags never reach the code that does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{DeployArgs, ToggleRun};
use crate::error::{Error, Result};
use crate::load::secrets::Keys;
use crate::remote::ssh::SshOptions;

/// Converge hosts to the state declared in this repository (deploy.yml,
/// inventory/, roles/), over SSH.
///
/// Exit status: 0 applied or in sync; 1 error (nothing applied); 2 --check
/// found changes; 3 some hosts failed while others were applied; 64 the
/// command line does not parse; 130 interrupted (SIGINT, SIGTERM, SIGHUP).
#[derive(Parser, Debug)]
#[command(name = "deploy", version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Environment to deploy: a group of inventory/hosts.yml (lab, prod, ...),
    /// or a toggle command (vpn-on, vpn-off, vpn-status) followed by the environment
    #[arg(required = true)]
    env: Option<String>,

    /// The environment, after a toggle command: `deploy vpn-on prod`
    #[arg(value_name = "ENV")]
    toggle_env: Option<String>,

    #[command(flatten)]
    run: RunFlags,

    #[command(flatten)]
    global: Global,

    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Args, Debug, Clone)]
struct Global {
    /// Project root (the directory holding deploy.yml)
    #[arg(long, global = true, default_value = ".")]
    root: PathBuf,
    /// age identity file for *.age vars files
    #[arg(long, global = true, env = "DEPLOY_AGE_IDENTITY")]
    identity: Option<PathBuf>,
    /// Extra variable, highest precedence (repeatable)
    #[arg(short = 'e', long = "extra-var", global = true, value_name = "KEY=VALUE")]
    extra: Vec<String>,
    /// Accept and record the key of a host never connected to before
    #[arg(long, global = true)]
    accept_new_host_keys: bool,
    /// Hosts worked on at once; the others wait their turn
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
}

#[derive(clap::Args, Debug, Clone)]
struct RunFlags {
    /// Show the plan and exit: 0 in sync, 2 changes pending, 1 error
    #[arg(long)]
    check: bool,
    /// Apply without asking
    #[arg(short, long)]
    yes: bool,
    /// Only this role's resources (repeatable)
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Only these hosts (repeatable or comma-separated)
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    limit: Vec<String>,
    /// Output format of the plan
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Toggles: how long the host waits for confirmation before reverting (e.g. 15m)
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    confirm_within: Option<u64>,
    /// Toggles: apply and leave the timer running, so the change reverts by itself (a trial)
    #[arg(long)]
    no_confirm: bool,
}

fn parse_window(s: &str) -> std::result::Result<u64, String> {
    crate::load::project::parse_duration(s)
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Write the rendered files of a host to a local directory (touches no host)
    Render {
        /// Environment
        env: String,
        /// Host (default: every host of the environment)
        #[arg(long)]
        host: Option<String>,
        /// Output directory; files land at OUT/HOST/<absolute path>
        #[arg(long)]
        out: PathBuf,
    },
    /// What each host records: last deploys, lock, pending or past reverts, toggles
    Status {
        /// Environment
        env: String,
    },
    /// Show and release the deploy lock of a host (after a killed deploy)
    Unlock {
        /// Environment
        env: String,
        /// Host whose lock to release
        #[arg(long)]
        host: String,
    },
    /// Edit, view or encrypt age-encrypted vars files
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

/// `deploy secrets ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum SecretsCommand {
    /// Decrypt to a private temp file, open $EDITOR, re-encrypt if changed
    Edit {
        /// The .age file
        file: PathBuf,
        /// Recipients (age1...); default: .age-recipients, else your identity's
        #[arg(long = "recipient")]
        recipients: Vec<String>,
    },
    /// Create a new X25519 identity file (prints its public key)
    Keygen {
        /// Where to write the identity (mode 0600); refuses to overwrite
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the decrypted content
    View {
        /// The .age file
        file: PathBuf,
    },
    /// Encrypt a plaintext YAML file to FILE.age and remove nothing
    Encrypt {
        /// The plaintext file
        file: PathBuf,
        /// Recipients (age1...); default: .age-recipients, else your identity's
        #[arg(long = "recipient")]
        recipients: Vec<String>,
        /// Output file (default: FILE.age)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Encrypt with the passphrase in DEPLOY_AGE_PASSPHRASE (scrypt) instead of recipients
        #[arg(long, conflicts_with = "recipients")]
        passphrase: bool,
    },
}

/// What to do, with every flag resolved.
pub(crate) enum Command {
    /// `deploy ENV` and `deploy NAME-on|off ENV`.
    Deploy(DeployArgs),
    /// `deploy NAME-status ENV`.
    ToggleStatus(DeployArgs, String),
    /// `deploy status ENV`.
    Status(DeployArgs),
    /// `deploy render ENV [--host H] --out DIR`.
    Render { args: DeployArgs, host: Option<String>, out: PathBuf },
    /// `deploy unlock ENV --host H`.
    Unlock { args: DeployArgs, host: String },
    /// `deploy secrets ...`.
    Secrets(SecretsCommand, Keys),
}

impl Cli {
    /// The project root, for shortening paths in messages.
    pub fn root(&self) -> PathBuf {
        self.global.root.clone()
    }

    /// Resolve the parsed flags into a command.
    pub(crate) fn resolve(self) -> Result<Command> {
        let g = self.global.clone();
        let base = |env: String| -> Result<DeployArgs> {
            Ok(DeployArgs {
                root: g.root.clone(),
                env,
                check: false,
                yes: false,
                roles: None,
                limit: None,
                json: false,
                extra: extra(&g)?,
                keys: keys(&g),
                ssh: SshOptions {
                    accept_new_host_keys: g.accept_new_host_keys,
                    parallel: g.parallel.into(),
                    ..Default::default()
                },
                toggle: None,
            })
        };
        Ok(match self.command {
            Some(Sub::Render { env, host, out }) => Command::Render { args: base(env)?, host, out },
            Some(Sub::Status { env }) => Command::Status(DeployArgs { check: true, ..base(env)? }),
            Some(Sub::Unlock { env, host }) => Command::Unlock { args: base(env)?, host },
            Some(Sub::Secrets(s)) => {
                let keys = keys(&g).with_default_identity(crate::load::project::age_identity_in(&g.root));
                Command::Secrets(s, keys)
            }
            None => {
                let first = self.env.ok_or_else(|| Error::Usage("an environment is required".into()))?;
                let run = self.run;
                let (env, toggle) = match self.toggle_env {
                    None => (first, None),
                    Some(env) => (env, Some(toggle_command(&first)?)),
                };
                let mut args = DeployArgs {
                    check: run.check,
                    yes: run.yes,
                    roles: (!run.roles.is_empty()).then_some(run.roles.clone()),
                    limit: (!run.limit.is_empty()).then_some(run.limit.clone()),
                    json: run.output == Output::Json,
                    ..base(env)?
                };
                match toggle {
                    None => Command::Deploy(args),
                    Some((name, None)) => Command::ToggleStatus(args, name),
                    Some((name, Some(on))) => {
                        args.toggle =
                            Some(ToggleRun { name, on, window: run.confirm_within, confirm: !run.no_confirm });
                        Command::Deploy(args)
                    }
                }
            }
        })
    }
}

/// `NAME-on` -> (NAME, Some(true)), `NAME-status` -> (NAME, None).
fn toggle_command(word: &str) -> Result<(String, Option<bool>)> {
    let (name, action) = word.rsplit_once('-').ok_or_else(|| {
        Error::Usage(format!("`{word}` is not a toggle command: write NAME-on, NAME-off or NAME-status"))
    })?;
    let on = match action {
        "on" => Some(true),
        "off" => Some(false),
        "status" => None,
        _ => return Err(Error::Usage(format!("`{word}`: a toggle takes -on, -off or -status"))),
    };
    Ok((name.to_string(), on))
}

fn keys(g: &Global) -> Keys {
    Keys { identity: g.identity.clone(), passphrase: std::env::var("DEPLOY_AGE_PASSPHRASE").ok() }
}

fn extra(g: &Global) -> Result<Vec<(String, String)>> {
    g.extra
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| Error::Usage(format!("-e {kv}: expected KEY=VALUE")))
        })
        .collect()
}
