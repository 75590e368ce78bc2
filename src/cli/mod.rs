//! The command line: clap definitions, resolved into a `Command` before any
//! work starts, so raw flags never reach the code that does the work.

mod docs;
mod values;

use std::path::{Path, PathBuf};

pub(crate) use docs::{completions, man_page};
use values::{default_env, extra, is_toggle_word, rollout, toggle_command};

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
#[command(
    name = "deploy",
    version = env!("DEPLOY_VERSION"),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Environment to deploy: a group of inventory/hosts.yml (lab, prod, ...),
    /// or a toggle command (vpn-on, vpn-off, vpn-status) followed by the
    /// environment. Default: DEPLOY_ENV, else `default_env` in deploy.yml
    env: Option<String>,

    /// The environment, after a toggle command: `deploy vpn-on prod`
    #[arg(value_name = "ENV")]
    toggle_env: Option<String>,

    #[command(flatten)]
    run: RunFlags,

    #[command(flatten)]
    global: Global,

    #[command(flatten)]
    vars: VarFlags,

    #[command(flatten)]
    hosts: HostFlags,

    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Args, Debug, Clone)]
struct Global {
    /// Project root (the directory holding deploy.yml); default: the
    /// nearest directory upwards from here that holds one
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// age identity file for *.age vars files (repeatable; DEPLOY_AGE_IDENTITY
    /// takes a colon-separated list)
    #[arg(long, global = true, env = "DEPLOY_AGE_IDENTITY", value_delimiter = ':')]
    identity: Vec<PathBuf>,
    /// Show each command run on a host, with how long it took
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Print only errors and the summary
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// Flags of the commands that render (deploy, render, status, unlock).
#[derive(clap::Args, Debug, Clone, Default)]
struct VarFlags {
    /// Extra variable, highest precedence (repeatable)
    #[arg(short = 'e', long = "extra-var", value_name = "KEY=VALUE")]
    extra: Vec<String>,
}

/// Flags of the commands that connect to hosts (deploy, status, unlock).
#[derive(clap::Args, Debug, Clone)]
struct HostFlags {
    /// Accept and record the key of a host never connected to before
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Hosts worked on at once; the others wait their turn
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
}

impl Default for HostFlags {
    fn default() -> HostFlags {
        HostFlags { accept_new_host_keys: false, parallel: 32 }
    }
}

/// `--facts FILE` of the commands that render without a host.
#[derive(clap::Args, Debug, Clone)]
struct FactsFlag {
    /// Host facts, for a repository that reads them: JSON as `ansible -m setup` or `deploy facts` writes it
    #[arg(long, value_name = "FILE")]
    facts: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
struct RunFlags {
    /// Show the plan and exit: 0 in sync, 2 changes pending, 1 error
    #[arg(long)]
    check: bool,
    /// Apply without asking
    #[arg(short, long)]
    yes: bool,
    /// With --yes: apply even a change that empties a managed file or takes most of its bytes away
    #[arg(long)]
    allow_shrink: bool,
    /// Only these roles' resources (repeatable or comma-separated)
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
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
    /// With --check: write the plan to FILE, for `deploy apply FILE`
    #[arg(long, value_name = "FILE", requires = "check")]
    save_plan: Option<PathBuf>,
    /// Hosts in batches of N (or N% of them); a batch starts when the one before passed
    #[arg(long, value_name = "N|N%")]
    serial: Option<crate::engine::rollout::Size>,
    /// N hosts first, then ask (with --yes: go on when they passed)
    #[arg(long, value_name = "N")]
    canary: Option<usize>,
    /// Stop the rollout once more than P% of the hosts failed (default 0: the first failure)
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u8).range(0..=100))]
    max_fail_percentage: Option<u8>,
}

fn parse_window(s: &str) -> std::result::Result<u64, String> {
    crate::load::project::parse_duration(s)
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Text,
    Json,
    /// The plan for a pull-request comment (collapsed diffs)
    Markdown,
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
        /// Output directory; files land at OUT/HOST/<absolute path>, and
        /// OUT/HOST.manifest lists path, mode, owner and sha256 of each
        #[arg(long)]
        out: PathBuf,
        /// Clear a non-empty output directory first
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        facts: FactsFlag,
        #[command(flatten)]
        vars: VarFlags,
    },
    /// The host facts a repository can read (ansible_distribution, ...), as JSON, for `render --facts`
    Facts {
        /// Environment
        env: String,
        /// Host
        #[arg(long)]
        host: String,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
    },
    /// What each host records: last deploys, lock, pending or past reverts, toggles
    Status {
        /// Environment
        env: String,
        /// Only these hosts (repeatable or comma-separated)
        #[arg(long, value_name = "HOST", value_delimiter = ',')]
        limit: Vec<String>,
        /// Output format
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
    },
    /// What was deployed, when, by whom, from which commit, and how each host took it
    History {
        /// Environment
        env: String,
        /// Only these hosts (repeatable or comma-separated)
        #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
        limit: Vec<String>,
        /// Output format
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
    },
    /// Apply exactly a plan saved with `deploy ENV --check --save-plan FILE`
    Apply {
        /// The saved plan
        file: PathBuf,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
    },
    /// Write an Ansible repository (inventory, playbook, roles) as a deploy repository
    Import {
        /// What to import from: ansible
        #[arg(value_parser = ["ansible"])]
        kind: String,
        /// The Ansible repository
        path: PathBuf,
        /// The playbook (default: site.yml, playbook.yml or main.yml)
        #[arg(long)]
        playbook: Option<PathBuf>,
        /// Where to write the deploy repository (must hold no deploy.yml)
        #[arg(long, default_value = "deploy-import")]
        out: PathBuf,
        /// Exit 1 when any task was not converted
        #[arg(long)]
        strict: bool,
        /// Decrypt the inventory's ansible-vault content with this password
        /// into age files (default: ansible.cfg's vault_password_file)
        #[arg(long, value_name = "FILE")]
        vault_password_file: Option<PathBuf>,
        /// Recipients of those age files (age1...); default: your identity's
        #[arg(long = "recipient")]
        recipients: Vec<String>,
    },
    /// Put back what a deploy changed, from the hosts' journals, as a deploy (plan, prompt, phases, health gates)
    Rollback {
        /// Environment
        env: String,
        /// The deploy to undo (an id from `deploy history`)
        #[arg(long, value_name = "ID", conflicts_with = "last", required_unless_present = "last")]
        to: Option<String>,
        /// The newest deploy of each host
        #[arg(long)]
        last: bool,
        /// Also when a later deploy changed the same paths, or when some cannot be restored (left as they are)
        #[arg(long)]
        force: bool,
        /// Show the plan and exit
        #[arg(long)]
        check: bool,
        /// Apply without asking
        #[arg(short, long)]
        yes: bool,
        /// Only these hosts (repeatable or comma-separated)
        #[arg(long, value_name = "HOST", value_delimiter = ',')]
        limit: Vec<String>,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
    },
    /// The variables of a host as they resolve (touches no host)
    Vars {
        /// Environment
        env: String,
        /// Host
        #[arg(long)]
        host: String,
        /// Only these variables
        names: Vec<String>,
        /// Also the file and layer each value comes from
        #[arg(long)]
        origin: bool,
        /// Show values from encrypted files instead of <redacted>
        #[arg(long)]
        show_secrets: bool,
        #[command(flatten)]
        vars: VarFlags,
    },
    /// The inventory of an environment: groups and hosts (touches no host)
    Inventory {
        /// Environment
        env: String,
        /// A tree of groups and hosts (the default)
        #[arg(long, conflicts_with = "list")]
        graph: bool,
        /// Groups, hosts and connection settings as JSON
        #[arg(long)]
        list: bool,
    },
    /// What a host manages: paths, containers and checks, with the role of each (touches no host)
    Plan {
        /// Environment
        env: String,
        /// Host
        #[arg(long)]
        host: String,
        /// List the managed items (the only form for now)
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        facts: FactsFlag,
        #[command(flatten)]
        vars: VarFlags,
    },
    /// Shell completions: `deploy completions bash > /etc/bash_completion.d/deploy`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// The man page (roff), from the same definitions as --help: `deploy man > deploy.1`
    Man,
    /// Show and release the deploy lock of a host (after a killed deploy)
    Unlock {
        /// Environment
        env: String,
        /// Host whose lock to release
        #[arg(long)]
        host: String,
        #[command(flatten)]
        vars: VarFlags,
        #[command(flatten)]
        hosts: HostFlags,
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
    /// Re-encrypt to the current recipients (.age-recipients found walking up
    /// from each file), after adding or removing a teammate
    Rekey {
        /// The .age files
        files: Vec<PathBuf>,
        /// Every *.age file under inventory/
        #[arg(long, conflicts_with = "files")]
        all: bool,
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
    /// Convert ansible-vault content to age: a whole vault file becomes FILE
    /// with .age for .yml (the vault file removed); `KEY: !vault |` values move
    /// into that .age file under the same keys, the rest of FILE stays
    #[command(name = "import-vault")]
    ImportVault {
        /// Vars files with vault content
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The vault password (its first line)
        #[arg(long, value_name = "FILE")]
        vault_password_file: PathBuf,
        /// Recipients (age1...); default: .age-recipients, else your identity's
        #[arg(long = "recipient")]
        recipients: Vec<String>,
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
    /// `deploy render ENV [--host H] --out DIR [--force]`.
    Render { args: DeployArgs, host: Option<String>, out: PathBuf, force: bool, facts: Option<PathBuf> },
    /// `deploy facts ENV --host H`.
    Facts { args: DeployArgs, host: String },
    /// `deploy vars ENV --host H [NAME...]`.
    Vars { args: DeployArgs, host: String, names: Vec<String>, origin: bool, show_secrets: bool },
    /// `deploy inventory ENV [--graph | --list]`.
    Inventory { args: DeployArgs, list: bool },
    /// `deploy plan ENV --host H --list`.
    PlanList { args: DeployArgs, host: String, facts: Option<PathBuf> },
    /// `deploy history ENV [--host H] [--output json]`.
    History(DeployArgs),
    /// `deploy import ansible PATH`.
    Import(crate::commands::import::ImportArgs),
    /// `deploy apply FILE`.
    Apply { args: DeployArgs, file: PathBuf },
    /// `deploy rollback ENV (--to ID | --last) [--force]`.
    Rollback { args: DeployArgs, to: Option<String>, force: bool },
    /// `deploy completions SHELL`.
    Completions(clap_complete::Shell),
    /// `deploy man`.
    Man,
    /// `deploy unlock ENV --host H`.
    Unlock { args: DeployArgs, host: String },
    /// `deploy secrets ...`.
    Secrets(SecretsCommand, Keys),
}

impl Cli {
    /// The project root, for shortening paths in messages.
    pub fn root(&self) -> PathBuf {
        match &self.global.root {
            Some(r) => r.clone(),
            None => crate::load::defaults::find_root(Path::new(".")),
        }
    }

    /// `--output json`: errors are JSON too.
    /// -v (1), -q (-1), neither (0).
    pub fn verbosity(&self) -> i8 {
        if self.global.verbose {
            1
        } else if self.global.quiet {
            -1
        } else {
            0
        }
    }

    pub fn json(&self) -> bool {
        self.run.output == Output::Json
            || matches!(
                self.command,
                Some(Sub::Status { output: Output::Json, .. } | Sub::History { output: Output::Json, .. })
            )
    }

    /// Resolve the parsed flags into a command.
    pub(crate) fn resolve(self) -> Result<Command> {
        if self.command.is_none() {
            return self.deploy_command();
        }
        let root = self.root();
        // deploy.yml is read here only when the command line leaves
        // something to it (no environment, a toggle word, secrets' identity)
        let defaults = || crate::load::defaults::defaults_in(&root);
        let g = self.global.clone();
        let base = |env: String, vars: &VarFlags, hosts: &HostFlags| base_args(&root, &g, env, vars, hosts);
        Ok(match self.command {
            Some(Sub::Render { env, host, out, force, facts, vars }) => {
                Command::Render { args: base(env, &vars, &HostFlags::default())?, host, out, force, facts: facts.facts }
            }
            Some(Sub::Facts { env, host, vars, hosts }) => Command::Facts { args: base(env, &vars, &hosts)?, host },
            Some(Sub::Status { env, limit, output, vars, hosts }) => Command::Status(DeployArgs {
                limit: (!limit.is_empty()).then_some(limit),
                ..read_only(base(env, &vars, &hosts)?, output)
            }),
            Some(Sub::Import { kind: _, path, playbook, out, strict, vault_password_file, recipients }) => {
                Command::Import(crate::commands::import::ImportArgs {
                    path,
                    playbook,
                    out,
                    strict,
                    vault_password_file,
                    recipients,
                    keys: keys(&g),
                })
            }
            Some(Sub::Apply { file, vars, hosts }) => {
                Command::Apply { args: base(String::new(), &vars, &hosts)?, file }
            }
            Some(Sub::Rollback { env, to, last: _, force, check, yes, limit, vars, hosts }) => Command::Rollback {
                args: DeployArgs {
                    check,
                    yes,
                    limit: (!limit.is_empty()).then_some(limit),
                    ..base(env, &vars, &hosts)?
                },
                to,
                force,
            },
            Some(Sub::History { env, limit, output, vars, hosts }) => Command::History(DeployArgs {
                limit: (!limit.is_empty()).then_some(limit),
                ..read_only(base(env, &vars, &hosts)?, output)
            }),
            Some(Sub::Vars { env, host, names, origin, show_secrets, vars }) => {
                Command::Vars { args: base(env, &vars, &HostFlags::default())?, host, names, origin, show_secrets }
            }
            Some(Sub::Inventory { env, graph: _, list }) => {
                Command::Inventory { args: base(env, &VarFlags::default(), &HostFlags::default())?, list }
            }
            Some(Sub::Plan { env, host, list: _, facts, vars }) => {
                Command::PlanList { args: base(env, &vars, &HostFlags::default())?, host, facts: facts.facts }
            }
            Some(Sub::Completions { shell }) => Command::Completions(shell),
            Some(Sub::Man) => Command::Man,
            Some(Sub::Unlock { env, host, vars, hosts }) => Command::Unlock { args: base(env, &vars, &hosts)?, host },
            Some(Sub::Secrets(s)) => {
                Command::Secrets(s, keys(&g).with_default_identities(defaults().age_identity.under(&root)))
            }
            None => unreachable!("handled first"),
        })
    }

    /// `deploy [ENV | TOGGLE-on ENV ...]`: a deploy, or a toggle.
    fn deploy_command(self) -> Result<Command> {
        let root = self.root();
        let defaults = || crate::load::defaults::defaults_in(&root);
        let g = self.global.clone();
        let run = self.run;
        let (env, toggle) = match (self.env, self.toggle_env) {
            (Some(word), Some(env)) => (env, Some(toggle_command(&word)?)),
            // `deploy vpn-on`: a toggle of deploy.yml, the default environment
            (Some(word), None) if is_toggle_word(&word, &defaults) => {
                (default_env(&root, &defaults())?, Some(toggle_command(&word)?))
            }
            (Some(env), None) => (env, None),
            (None, _) => (default_env(&root, &defaults())?, None),
        };
        let mut args = DeployArgs {
            check: run.check,
            yes: run.yes,
            allow_shrink: run.allow_shrink,
            roles: (!run.roles.is_empty()).then_some(run.roles.clone()),
            limit: (!run.limit.is_empty()).then_some(run.limit.clone()),
            json: run.output == Output::Json,
            markdown: run.output == Output::Markdown,
            rollout: rollout(&run, &defaults())?,
            save_plan: run.save_plan.clone(),
            ..base_args(&root, &g, env, &self.vars, &self.hosts)?
        };
        Ok(match toggle {
            None => Command::Deploy(args),
            Some((name, None)) => Command::ToggleStatus(args, name),
            Some((name, Some(on))) => {
                args.toggle = Some(ToggleRun { name, on, window: run.confirm_within, confirm: !run.no_confirm });
                Command::Deploy(args)
            }
        })
    }
}

/// The arguments every command shares, from the global and per-command flags.
fn base_args(root: &Path, g: &Global, env: String, vars: &VarFlags, hosts: &HostFlags) -> Result<DeployArgs> {
    Ok(DeployArgs {
        root: root.to_path_buf(),
        env,
        check: false,
        yes: false,
        allow_shrink: false,
        roles: None,
        limit: None,
        json: false,
        markdown: false,
        rollout: Default::default(),
        rollback: false,
        save_plan: None,
        expect: None,
        extra: extra(vars)?,
        keys: keys(g),
        ssh: SshOptions {
            accept_new_host_keys: hosts.accept_new_host_keys,
            parallel: hosts.parallel.into(),
            ..Default::default()
        },
        toggle: None,
    })
}

/// A command that only reads hosts (status, history).
fn read_only(args: DeployArgs, output: Output) -> DeployArgs {
    DeployArgs { check: true, json: output == Output::Json, ..args }
}

fn keys(g: &Global) -> Keys {
    Keys { identities: g.identity.clone(), passphrase: std::env::var("DEPLOY_AGE_PASSPHRASE").ok() }
}
