//! `kinds [KIND] [--files]`: every stage kind with its params, inputs and outputs, or the source
//! files its code fingerprint covers.

use std::process::ExitCode;

use anyhow::Result;
use s2r_pipe::diagnostic::suggest;
use s2r_stages::fingerprint::files_of;
use s2r_stages::Registry;

use super::ConfigError;

/// Lists `kind` (default: every kind).
pub fn kinds(registry: &Registry, only: Option<&str>, files: bool) -> Result<ExitCode> {
    if let Some(k) = only {
        if registry.get(k).is_none() {
            let all: Vec<&str> = registry.kinds().collect();
            return Err(ConfigError(format!("no kind `{k}`; {}", suggest(k, all.iter().copied()))).into());
        }
    }
    for kind in registry.kinds().filter(|k| only.is_none_or(|o| o == *k)) {
        let r = registry.get(kind).expect("listed");
        println!("{kind}: {}", r.stage.about());
        if files {
            let fs = files_of(r.stage.source()).unwrap_or(&[]);
            println!(
                "    code fingerprint {} over {} files (under stages/src):",
                &r.fingerprint[..16.min(r.fingerprint.len())],
                fs.len()
            );
            for f in fs {
                println!("    file   {f}");
            }
            continue;
        }
        for p in r.stage.params() {
            println!(
                "    param  {:<18} {} ({}) — {}",
                p.name,
                p.ty,
                p.default.map(|d| format!("default {d}")).unwrap_or_else(|| "required".into()),
                p.help
            );
        }
        for i in r.stage.inputs() {
            println!("    input  {:<18} {}{}", i.name, if i.required { "" } else { "(optional) " }, i.help);
        }
        for o in r.stage.outputs() {
            println!("    output {:<18} {}", o.name, o.help);
        }
    }
    Ok(ExitCode::SUCCESS)
}
