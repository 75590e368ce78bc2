//! The man page and the shell completions, generated from the same clap
//! definitions as --help, so they cannot drift from the flags.

use super::*;

/// The man page: deploy(1) with every subcommand's options in it.
pub(crate) fn man_page() -> Vec<u8> {
    use clap::CommandFactory;
    let cmd = Cli::command().name("deploy");
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    let _ = man.render(&mut out);
    // each subcommand as its own section, options included
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("deploy {}", sub.get_name());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let sub = sub.clone().bin_name(name);
        let m = clap_mangen::Man::new(sub);
        let _ = m.render_description_section(&mut out);
        let _ = m.render_synopsis_section(&mut out);
        let _ = m.render_options_section(&mut out);
    }
    out
}

/// The completion script for `shell`, from the same definitions as --help.
pub(crate) fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "deploy", &mut out);
    out
}
