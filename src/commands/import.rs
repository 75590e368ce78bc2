//! `deploy import ansible PATH`: the import, its vault secrets moved to age
//! files, and its report.

use std::path::{Path, PathBuf};

use crate::error::{exit, Error, Result};
use crate::import::{Report, Unconverted};
use crate::load::secrets::Keys;

/// `deploy import ansible` with every flag.
pub(crate) struct ImportArgs {
    pub(crate) path: PathBuf,
    pub(crate) playbook: Option<PathBuf>,
    pub(crate) out: PathBuf,
    pub(crate) strict: bool,
    pub(crate) vault_password_file: Option<PathBuf>,
    pub(crate) recipients: Vec<String>,
    pub(crate) keys: Keys,
}

/// Vars files under `dir` holding ansible-vault content (a whole-file vault
/// or an inline `!vault` value), with the line of the first.
fn vault_files(dir: &Path, out: &mut Vec<(PathBuf, usize)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            vault_files(&p, out);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            let line = if text.starts_with("$ANSIBLE_VAULT;") {
                Some(1)
            } else {
                text.lines().position(|l| l.contains("!vault")).map(|i| i + 1)
            };
            if let Some(l) = line {
                out.push((p, l));
            }
        }
    }
}

/// Import into a directory beside `out`, renamed to `out` only when all of
/// it (vault secrets included) succeeded: a failed import leaves nothing.
pub(crate) fn import(a: ImportArgs) -> Result<u8> {
    let empty = |p: &Path| std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true);
    if a.out.exists() && !empty(&a.out) {
        return Err(Error::invalid(&a.out, "is not empty: import into a new or empty directory"));
    }
    let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "import".into());
    let work = a.out.with_file_name(format!(".{name}.importing"));
    let _ = std::fs::remove_dir_all(&work);
    let result = import_into(&a, &work);
    match result {
        // --strict: what was not converted fails the import, which writes nothing
        Ok(report) if a.strict && !report.unconverted.is_empty() => {
            let _ = std::fs::remove_dir_all(&work);
            crate::report::line(&text(&a, &report, false));
            crate::report::line(&format!(
                "--strict: {} tasks not converted, so nothing was written to {}",
                report.unconverted.len(),
                a.out.display()
            ));
            Ok(exit::ERROR)
        }
        Ok(report) => {
            let md = work.join("IMPORT.md");
            let body = text(&a, &report, true);
            std::fs::write(&md, format!("# deploy import ansible {}\n\n```\n{body}\n```\n", a.path.display()))
                .map_err(|e| Error::io(&md, e))?;
            std::fs::rename(&work, &a.out).map_err(|e| Error::io(&a.out, e))?;
            crate::report::line(&body);
            Ok(exit::OK)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

fn import_into(a: &ImportArgs, out: &Path) -> Result<Report> {
    // deploy.yml names the identity as it resolves from anywhere, the new
    // repository included (a path relative to here would not)
    let identity = a.keys.identities.first().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let mut r = crate::import::import_ansible(&a.path, a.playbook.as_deref(), out, identity.as_deref())?;
    // the recipients secrets are encrypted to, for `deploy secrets edit` and
    // new .age files in the new repository
    let recipients = if a.recipients.is_empty() {
        identity.as_ref().map(|_| a.keys.own_recipients(out)).transpose()?.unwrap_or_default()
    } else {
        a.recipients.clone()
    };
    if !recipients.is_empty() {
        let p = out.join(".age-recipients");
        let text = format!(
            "# who the secrets of this repository are encrypted to (one age recipient a line)\n{}\n",
            recipients.join("\n")
        );
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    let cfg = crate::import::ansible_cfg(&a.path);
    let mut vaults = Vec::new();
    for sub in ["group_vars", "host_vars"] {
        vault_files(&out.join("inventory").join(sub), &mut vaults);
    }
    let password = a.vault_password_file.clone().or(cfg.vault_password_file).or(cfg.identity_password_file);
    match (&password, vaults.is_empty()) {
        (_, true) => {}
        (Some(pw), false) => {
            let files: Vec<PathBuf> = vaults.iter().map(|(p, _)| p.clone()).collect();
            let shown = |p: &Path| a.out.join(p.strip_prefix(out).unwrap_or(p)).display().to_string();
            r.notes.extend(crate::commands::vault::import(&a.keys, &files, pw, &a.recipients, &shown)?);
        }
        (None, false) => {
            for (p, line) in vaults {
                let rel = p.strip_prefix(out).unwrap_or(&p).to_path_buf();
                r.unconverted.push(Unconverted {
                    file: a.path.join(rel),
                    line: Some(line),
                    module: "ansible-vault".into(),
                    why: "vault content, which deploy refuses: import again with --vault-password-file".into(),
                });
            }
        }
    }
    Ok(r)
}

/// The report: counts, every task not converted with file:line and why,
/// what had nothing to do, every handler and what it became, notes, and
/// the totals per reason; `written`: where the report file is.
fn text(a: &ImportArgs, r: &Report, written: bool) -> String {
    let mut out = vec![format!(
        "Imported {} into {}: {} tasks converted, {} not converted, {} with nothing to do on a host.",
        a.path.display(),
        a.out.display(),
        r.converted,
        r.unconverted.len(),
        r.nothing.len()
    )];
    let mut unconverted: Vec<&Unconverted> = r.unconverted.iter().collect();
    unconverted.sort_by_key(|u| (u.file.clone(), u.line));
    for u in unconverted {
        let line = u.line.map(|l| format!(":{l}")).unwrap_or_default();
        let file = u.file.strip_prefix(&a.path).unwrap_or(&u.file);
        out.push(format!("  not converted: {}{line}: {}: {}", file.display(), u.module, u.why));
    }
    for n in &r.nothing {
        out.push(format!("  nothing to do: {n}"));
    }
    for n in &r.notes {
        out.push(format!("  note: {n}"));
    }
    for h in &r.handlers {
        out.push(format!("  handler: {h}"));
    }
    if !r.unconverted.is_empty() {
        out.push("Not converted, by reason:".into());
        for (n, why) in reasons(&r.unconverted) {
            out.push(format!("  {n:>4}  {why}"));
        }
    }
    if written {
        out.push(format!("This report is also in {}.", a.out.join("IMPORT.md").display()));
    }
    out.join("\n")
}

/// The reasons tasks were not converted, each with how many: a reason's
/// names (`set_fact`, a register's) folded, most frequent first.
fn reasons(list: &[Unconverted]) -> Vec<(usize, String)> {
    let mut counts: Vec<(usize, String)> = Vec::new();
    for u in list {
        let mut why = String::new();
        for (i, part) in u.why.split('`').enumerate() {
            why.push_str(if i % 2 == 1 { "`...`" } else { part });
        }
        if let Some(rest) = why.strip_prefix("register: ") {
            why = format!("register: ...{}", &rest[rest.find(':').unwrap_or(0)..]);
        }
        match counts.iter_mut().find(|(_, w)| *w == why) {
            Some(c) => c.0 += 1,
            None => counts.push((1, why)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.0));
    counts
}
