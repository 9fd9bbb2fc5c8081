//! Phase 3: input references → bindings. `stage.output` names one instance, or every instance of
//! a matrix stage that agrees with the consumer on shared axes; `stage.*` binds every output the
//! consumer accepts; required inputs must be bound and single inputs bound once.

use std::collections::HashMap;

use s2r_stages::Registry;

use super::context::Ctx;
use super::expand::Expanded;
use super::raw::RawPipeline;
use super::{list, raw_has_stage, Binding, StageSpec};
use crate::diagnostic::suggest;

/// Resolves the references of every instance of `ex`.
pub(super) fn bind(cx: &mut Ctx<'_>, raw: &RawPipeline, registry: &Registry, ex: Expanded) -> Vec<StageSpec> {
    let Expanded { pending, instances_of, axes_of, kind_of_base } = ex;
    let by_id: HashMap<String, usize> = pending.iter().enumerate().map(|(i, p)| (p.spec.id.to_string(), i)).collect();
    let all_ids: Vec<String> = instances_of.keys().cloned().collect();
    let mut resolved: Vec<Vec<Binding>> = vec![Vec::new(); pending.len()];
    for (i, p) in pending.iter().enumerate() {
        let reg = registry.get(&p.spec.kind).expect("kind checked above");
        let accepted: Vec<&str> = reg.stage.inputs().iter().map(|d| d.name).collect();
        for (input, r, rpath) in &p.refs {
            let Some((stage_ref, output)) = r.rsplit_once('.') else {
                cx.push(
                    "spec::bad-input",
                    format!("stage `{}`: input `{input}` = `{r}` is not `stage.output`", p.spec.id),
                    rpath,
                    Some("write `<stage>.<output>` or `<stage>.*`".into()),
                );
                continue;
            };
            // Which instances does the reference mean?
            let targets: Vec<usize> = if let Some(&t) = by_id.get(stage_ref) {
                vec![t]
            } else if let Some(insts) = instances_of.get(stage_ref) {
                let axes = &axes_of[stage_ref];
                insts
                    .iter()
                    .copied()
                    .filter(|&t| {
                        axes.iter().all(|a| match p.spec.matrix.get(a) {
                            Some(v) => pending[t].spec.matrix.get(a) == Some(v),
                            None => true,
                        })
                    })
                    .collect()
            } else {
                let hint = suggest(stage_ref, all_ids.iter().map(String::as_str));
                let msg = if kind_of_base.contains_key(stage_ref) || raw_has_stage(raw, stage_ref) {
                    format!("stage `{}`: input `{input}` refers to `{stage_ref}`, which has errors", p.spec.id)
                } else {
                    format!("stage `{}`: input `{input}` refers to unknown stage `{stage_ref}`", p.spec.id)
                };
                cx.push("spec::missing-input", msg, rpath, Some(hint));
                continue;
            };
            if targets.is_empty() {
                cx.push(
                    "spec::missing-input",
                    format!("stage `{}`: `{stage_ref}` has no instance matching this one's matrix values", p.spec.id),
                    rpath,
                    None,
                );
                continue;
            }
            let target_kind = &pending[targets[0]].spec.kind;
            let outputs: Vec<&str> =
                registry.get(target_kind).expect("checked").stage.outputs().iter().map(|o| o.name).collect();
            if output == "*" {
                // Spread: every output the consumer accepts, bound under its own name.
                let mut any = false;
                for o in &outputs {
                    if accepted.contains(o) {
                        any = true;
                        for &t in &targets {
                            resolved[i].push(Binding {
                                input: (*o).to_string(),
                                from: pending[t].spec.id.clone(),
                                output: (*o).to_string(),
                            });
                        }
                    }
                }
                if !any {
                    cx.push(
                        "spec::bad-input",
                        format!(
                            "stage `{}`: `{stage_ref}.*` binds nothing: `{target_kind}` outputs {} and `{}` accepts {}",
                            p.spec.id,
                            list(&outputs),
                            p.spec.kind,
                            list(&accepted)
                        ),
                        rpath,
                        None,
                    );
                }
                continue;
            }
            if !outputs.contains(&output) {
                cx.push(
                    "spec::unknown-output",
                    format!("stage `{}`: `{stage_ref}` ({target_kind}) has no output `{output}`", p.spec.id),
                    rpath,
                    Some(format!("its outputs are {}", list(&outputs))),
                );
                continue;
            }
            if !accepted.contains(&input.as_str()) {
                cx.push_key(
                    "spec::unknown-input",
                    format!("stage `{}` ({}) has no input `{input}`", p.spec.id, p.spec.kind),
                    &format!("{}/inputs/{input}", p.path),
                    Some(format!("its inputs are {}", list(&accepted))),
                );
                continue;
            }
            for &t in &targets {
                resolved[i].push(Binding {
                    input: input.clone(),
                    from: pending[t].spec.id.clone(),
                    output: output.to_string(),
                });
            }
        }
        for doc in reg.stage.inputs() {
            let n = resolved[i].iter().filter(|b| b.input == doc.name).count();
            let written = p.refs.iter().any(|r| r.0 == doc.name);
            if doc.required && n == 0 && !written {
                cx.push_key(
                    "spec::missing-input",
                    format!("stage `{}` ({}) needs input `{}` ({})", p.spec.id, p.spec.kind, doc.name, doc.help),
                    &p.path,
                    Some(format!("add `inputs: {{{}: <stage>.<output>}}`", doc.name)),
                );
            }
            if !doc.many && n > 1 {
                cx.push(
                    "spec::bad-input",
                    format!("stage `{}`: input `{}` takes one artifact, {n} are bound", p.spec.id, doc.name),
                    &format!("{}/inputs", p.path),
                    Some("bind a single instance, e.g. `stage[axis=value].output`".into()),
                );
            }
        }
    }
    let mut stages: Vec<StageSpec> = Vec::new();
    for (p, b) in pending.into_iter().zip(resolved) {
        let mut s = p.spec;
        s.inputs = b;
        stages.push(s);
    }
    stages
}
