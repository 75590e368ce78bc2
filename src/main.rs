//! The `deploy` binary: parse arguments, run, print errors with their hints,
//! exit with a documented status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use deploy::error::{Error, Result};
use deploy::load::secrets::Keys;
use deploy::remote::ssh::SshOptions;
use deploy::run::{exit, DeployArgs};

/// Converge hosts to the state declared in this repository (deploy.yml,
/// inventory/, roles/), over SSH.
///
/// Exit status: 0 applied or in sync; 1 error (nothing applied); 2 --check
/// found changes; 3 some hosts failed while others were applied.
#[derive(Parser, Debug)]
#[command(name = "deploy", version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
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
    command: Option<Command>,
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
    deploy::load::project::parse_duration(s)
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
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

#[derive(Subcommand, Debug)]
enum SecretsCommand {
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

fn keys(g: &Global) -> Keys {
    let mut identity = g.identity.clone();
    if identity.is_none() {
        // deploy.yml may name a default identity, relative to the root
        if let Ok(text) = std::fs::read_to_string(g.root.join("deploy.yml")) {
            if let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
                if let Some(p) = v.get("age_identity").and_then(|p| p.as_str()) {
                    identity = Some(g.root.join(p));
                }
            }
        }
    }
    Keys { identity, passphrase: std::env::var("DEPLOY_AGE_PASSPHRASE").ok() }
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

async fn run(cli: Cli) -> Result<u8> {
    let g = cli.global.clone();
    match cli.command {
        None => {
            let first = cli.env.expect("clap requires env");
            let (env, toggle) = match cli.toggle_env.clone() {
                None => (first, None),
                Some(env) => {
                    let (name, action) = first.rsplit_once('-').ok_or_else(|| {
                        Error::Usage(format!(
                            "`{first}` is not a toggle command: write NAME-on, NAME-off or NAME-status"
                        ))
                    })?;
                    (env, Some((name.to_string(), action.to_string())))
                }
            };
            let toggle_run = match &toggle {
                None => None,
                Some((name, action)) if action == "on" || action == "off" => Some(deploy::run::ToggleRun {
                    name: name.clone(),
                    on: action == "on",
                    window: cli.run.confirm_within,
                    confirm: !cli.run.no_confirm,
                }),
                Some((_, action)) if action == "status" => None,
                Some((name, action)) => {
                    return Err(Error::Usage(format!("`{name}-{action}`: a toggle takes -on, -off or -status")))
                }
            };
            let args = DeployArgs {
                toggle: toggle_run,
                root: g.root.clone(),
                env,
                check: cli.run.check,
                yes: cli.run.yes,
                roles: (!cli.run.roles.is_empty()).then_some(cli.run.roles.clone()),
                limit: (!cli.run.limit.is_empty()).then_some(cli.run.limit.clone()),
                json: cli.run.output == Output::Json,
                extra: extra(&g)?,
                keys: keys(&g),
                ssh: SshOptions {
                    accept_new_host_keys: g.accept_new_host_keys,
                    parallel: g.parallel.into(),
                    ..Default::default()
                },
            };
            if let Some((name, action)) = &toggle {
                if action == "status" {
                    return deploy::run::toggle_status(args, name).await;
                }
            }
            deploy::run::deploy(args).await
        }
        Some(Command::Render { env, host, out }) => {
            let loaded = deploy::render::Renderer::load(&g.root, &env, &keys(&g), &extra(&g)?)?;
            let hosts = match host {
                Some(h) => vec![h],
                None => loaded.hosts.clone(),
            };
            for w in &loaded.warnings {
                eprintln!("{} {}", console::style("warning:").yellow().bold(), loaded.redactor.redact(&w.to_string()));
            }
            for h in &hosts {
                let d = loaded.render_host(h, None)?;
                for w in &d.warnings {
                    eprintln!("{} host {h}: {}", console::style("warning:").yellow().bold(), loaded.redactor.redact(w));
                }
                for f in &d.files {
                    let p = out.join(h).join(f.dest.trim_start_matches('/'));
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                    }
                    std::fs::write(&p, &f.bytes).map_err(|e| Error::io(&p, e))?;
                }
                for dir in &d.dirs {
                    let p = out.join(h).join(dir.path.trim_start_matches('/'));
                    std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                }
                println!(
                    "{h}: {} files, {} directories written under {}",
                    d.files.len(),
                    d.dirs.len(),
                    out.join(h).display()
                );
            }
            Ok(exit::OK)
        }
        Some(Command::Status { env }) => {
            let args = DeployArgs {
                root: g.root.clone(),
                env,
                check: true,
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
            };
            deploy::run::host_status(args).await
        }
        Some(Command::Unlock { env, host }) => {
            let loaded = deploy::render::Renderer::load(&g.root, &env, &keys(&g), &extra(&g)?)?;
            let d = loaded.render_host(&host, None)?;
            let opts = SshOptions {
                accept_new_host_keys: g.accept_new_host_keys,
                parallel: g.parallel.into(),
                ..Default::default()
            };
            let conn = deploy::remote::ssh::connect(&host, &d.connection, &opts).await?;
            let out = conn.run("deploy-unlock", deploy::remote::apply::UNLOCK, &[], None).await?;
            conn.close().await;
            let text = String::from_utf8_lossy(&out.stdout);
            match text.split_once('\t') {
                Some(("held", who)) => println!("{host}: released the lock held by {}", who.trim()),
                _ => println!("{host}: no lock was held"),
            }
            Ok(exit::OK)
        }
        Some(Command::Secrets(s)) => secrets(s, &g),
    }
}

fn secrets(cmd: SecretsCommand, g: &Global) -> Result<u8> {
    let k = keys(g);
    match cmd {
        SecretsCommand::Keygen { out } => {
            let public = deploy::load::secrets::keygen(&out)?;
            println!("{public}");
            Ok(exit::OK)
        }
        SecretsCommand::View { file } => {
            let plain = k.decrypt(&file)?;
            use std::io::Write;
            let _ = std::io::stdout().write_all(&plain);
            Ok(exit::OK)
        }
        SecretsCommand::Edit { file, recipients } => {
            let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
            let changed = deploy::load::secrets::edit(&file, &k, &recipients, &editor)?;
            eprintln!(
                "{}: {}",
                file.display(),
                if changed { "saved (re-encrypted)" } else { "unchanged; file not rewritten" }
            );
            Ok(exit::OK)
        }
        SecretsCommand::Encrypt { file, recipients, out, passphrase } => {
            let plain = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            if let Err(e) = serde_yaml::from_slice::<serde_yaml::Value>(&plain) {
                return Err(deploy::load::yaml::yaml_error(&file, &e));
            }
            let out = out.unwrap_or_else(|| append_ext(&file, "age"));
            if passphrase {
                let Some(pass) = k.passphrase.clone() else {
                    return Err(Error::Usage(
                        "--passphrase reads the passphrase from DEPLOY_AGE_PASSPHRASE, which is not set".into(),
                    ));
                };
                let enc = deploy::load::secrets::encrypt_passphrase(&out, &plain, &pass)?;
                deploy::load::secrets::write_atomic(&out, &enc)?;
                eprintln!("{}: encrypted with a passphrase", out.display());
                return Ok(exit::OK);
            }
            let recipients = deploy::load::secrets::recipients_for(&out, &recipients, &k)?;
            let enc = deploy::load::secrets::encrypt(&out, &plain, &recipients)?;
            deploy::load::secrets::write_atomic(&out, &enc)?;
            eprintln!("{}: encrypted to {} recipient(s)", out.display(), recipients.len());
            Ok(exit::OK)
        }
    }
}

fn append_ext(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.global.root.clone();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let prefix = format!("{}/", root.display());
            let text = e.to_string();
            let text = text.strip_prefix(&prefix).unwrap_or(&text).replace(&format!(" {prefix}"), " ");
            eprintln!("{} {text}", console::style("error:").red().bold());
            if let Some(h) = e.hint() {
                eprintln!("  {} {h}", console::style("hint:").cyan());
            }
            ExitCode::from(exit::ERROR)
        }
    }
}
