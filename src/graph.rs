//! The stage DAG (petgraph). `Graph<Building>` → [`Graph::seal`] → `Graph<Built>`: only a sealed
//! graph (acyclic, every input bound to an existing stage) can be planned or executed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::marker::PhantomData;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::spec::{Pipeline, StageSpec};

/// Typestate: edges may still be invalid.
#[derive(Debug)]
pub struct Building;
/// Typestate: acyclic and fully connected.
#[derive(Debug)]
pub struct Built;

/// The DAG: nodes are indices into `pipeline.stages`; an edge `a → b` means b reads an output of a.
#[derive(Debug)]
pub struct Graph<S> {
    pipeline: Pipeline,
    graph: DiGraph<usize, ()>,
    nodes: Vec<NodeIndex>,
    topo: Vec<usize>,
    by_id: HashMap<String, usize>,
    _state: PhantomData<S>,
}

impl Graph<Building> {
    /// Builds the graph of `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        let (graph, nodes, _) = dependency_graph(&pipeline.stages);
        let by_id = pipeline.stages.iter().enumerate().map(|(i, s)| (s.id.to_string(), i)).collect();
        Graph { pipeline, graph, nodes, topo: Vec::new(), by_id, _state: PhantomData }
    }

    /// Checks that the graph is acyclic and every binding names a stage in it.
    pub fn seal(self) -> Result<Graph<Built>, Diagnostics> {
        let mut diags = Vec::new();
        let ids: HashMap<&str, ()> = self.pipeline.stages.iter().map(|s| (s.id.as_str(), ())).collect();
        for s in &self.pipeline.stages {
            for b in &s.inputs {
                if !ids.contains_key(b.from.as_str()) {
                    diags.push(Diagnostic::new(
                        "graph::dangling",
                        format!("stage `{}` reads `{}.{}`, which is not in the graph", s.id, b.from, b.output),
                    ));
                }
            }
        }
        for c in cycles(&self.pipeline.stages) {
            diags.push(Diagnostic::new("spec::cycle", cycle_message(&self.pipeline.stages, &c)));
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        let order = petgraph::algo::toposort(&self.graph, None).expect("acyclic: checked above");
        let topo = order.into_iter().map(|n| self.graph[n]).collect();
        Ok(Graph {
            pipeline: self.pipeline,
            graph: self.graph,
            nodes: self.nodes,
            topo,
            by_id: self.by_id,
            _state: PhantomData,
        })
    }
}

impl Graph<Built> {
    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Stage `i`.
    pub fn stage(&self, i: usize) -> &StageSpec {
        &self.pipeline.stages[i]
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.pipeline.stages.len()
    }

    /// Whether there are no stages.
    pub fn is_empty(&self) -> bool {
        self.pipeline.stages.is_empty()
    }

    /// Stage indices in a dependency-respecting order.
    pub fn topo(&self) -> &[usize] {
        &self.topo
    }

    /// Stages whose outputs stage `i` reads.
    pub fn dependencies(&self, i: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .graph
            .edges_directed(self.nodes[i], petgraph::Direction::Incoming)
            .map(|e| self.graph[e.source()])
            .collect();
        v.sort_unstable();
        v
    }

    /// Stages that read stage `i`'s outputs.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .graph
            .edges_directed(self.nodes[i], petgraph::Direction::Outgoing)
            .map(|e| self.graph[e.target()])
            .collect();
        v.sort_unstable();
        v
    }

    /// Index of the stage with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut out =
            format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", self.pipeline.name);
        for s in &self.pipeline.stages {
            out.push_str(&format!("  \"{}\" [label=\"{}\\n{}\"];\n", s.id, s.id, s.kind));
        }
        for s in &self.pipeline.stages {
            let mut seen = std::collections::BTreeMap::<&str, Vec<&str>>::new();
            for b in &s.inputs {
                seen.entry(b.from.as_str()).or_default().push(&b.output);
            }
            for (from, outs) in seen {
                out.push_str(&format!("  \"{from}\" -> \"{}\" [label=\"{}\"];\n", s.id, outs.join(",")));
            }
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let node = |i: usize| format!("s{i}");
        let index: HashMap<&str, usize> =
            self.pipeline.stages.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut out = String::from("flowchart LR\n");
        for (i, s) in self.pipeline.stages.iter().enumerate() {
            out.push_str(&format!("  {}[\"{}<br/><i>{}</i>\"]\n", node(i), s.id, s.kind));
        }
        for (i, s) in self.pipeline.stages.iter().enumerate() {
            let mut seen = std::collections::BTreeMap::<usize, Vec<&str>>::new();
            for b in &s.inputs {
                seen.entry(index[b.from.as_str()]).or_default().push(&b.output);
            }
            for (from, outs) in seen {
                out.push_str(&format!("  {} -->|{}| {}\n", node(from), outs.join(","), node(i)));
            }
        }
        out
    }
}

/// Whether `text` matches the glob `pat`: `*` any run of characters, `?` one, everything else
/// literal (so `[` and `]` of matrix ids need no escaping: `test_dqn_r[*]`).
pub fn glob_match(pat: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Graph<Built> {
    /// The stages `targets` name (ids or globs; a name without `[` also matches every instance of
    /// that stage), with everything they need upstream and, with `downstream`, everything that
    /// depends on them (and what that needs), as a graph of its own. A target that matches no
    /// stage is an error naming the nearest ids. No targets: the whole graph.
    pub fn select(self, targets: &[String], downstream: bool) -> Result<Graph<Built>, String> {
        if targets.is_empty() {
            return Ok(self);
        }
        let n = self.len();
        let mut chosen = vec![false; n];
        for t in targets {
            let mut any = false;
            for (i, c) in chosen.iter_mut().enumerate() {
                let s = self.stage(i);
                if glob_match(t, s.id.as_str()) || (!t.contains('[') && glob_match(t, s.id.base())) {
                    *c = true;
                    any = true;
                }
            }
            if !any {
                let ids: Vec<&str> = (0..n).map(|i| self.stage(i).id.as_str()).collect();
                return Err(format!(
                    "no stage matches the target `{t}`; {}",
                    crate::diagnostic::suggest(t, ids.iter().copied())
                ));
            }
        }
        let mut keep = chosen.clone();
        if downstream {
            // Everything reachable forwards from a chosen stage.
            let mut stack: Vec<usize> = (0..n).filter(|&i| chosen[i]).collect();
            while let Some(i) = stack.pop() {
                for d in self.dependents(i) {
                    if !keep[d] {
                        keep[d] = true;
                        stack.push(d);
                    }
                }
            }
        }
        // And everything the kept stages need.
        let mut stack: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
        while let Some(i) = stack.pop() {
            for d in self.dependencies(i) {
                if !keep[d] {
                    keep[d] = true;
                    stack.push(d);
                }
            }
        }
        let mut pipeline = self.pipeline().clone();
        let mut k = 0;
        pipeline.stages.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        Graph::new(pipeline).seal().map_err(|d| d.to_string())
    }
}

/// Loads, validates and seals a pipeline file.
pub fn load(
    path: &std::path::Path,
    overrides: &[String],
    registry: &s2r_stages::Registry,
) -> Result<Graph<Built>, Diagnostics> {
    Graph::new(crate::spec::load_pipeline(path, overrides, registry)?).seal()
}

/// The dependency graph of `stages` — a node per stage (weight: its index), an edge `a → b` when
/// b reads an output of a — and the stages that read their own outputs. The one place the DAG is
/// built (pipelines' cycle checks and [`Graph`] both use it). Edges are deduplicated with a set:
/// `update_edge` scans the source's edges, quadratic for a stage read by thousands of others.
fn dependency_graph(stages: &[StageSpec]) -> (DiGraph<usize, ()>, Vec<NodeIndex>, BTreeSet<usize>) {
    let index: HashMap<&str, usize> = stages.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut g = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| g.add_node(i)).collect();
    let mut self_loops = BTreeSet::new();
    let mut seen = HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        for b in &s.inputs {
            if let Some(&j) = index.get(b.from.as_str()) {
                if i == j {
                    self_loops.insert(i);
                }
                if seen.insert((j, i)) {
                    g.add_edge(nodes[j], nodes[i], ());
                }
            }
        }
    }
    (g, nodes, self_loops)
}

/// `the stages form a cycle: `a` → `b` → `a``.
pub fn cycle_message(stages: &[StageSpec], cycle: &[usize]) -> String {
    let path = cycle
        .iter()
        .chain(std::iter::once(&cycle[0]))
        .map(|&i| format!("`{}`", stages[i].id))
        .collect::<Vec<_>>()
        .join(" → ");
    format!("the stages form a cycle: {path}")
}

/// Every elementary cycle's members (one per strongly connected component), in dependency order.
pub fn cycles(stages: &[StageSpec]) -> Vec<Vec<usize>> {
    let (g, _, self_loops) = dependency_graph(stages);
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() > 1 {
            // Walk from the first member along edges inside the component until we return.
            let members: BTreeSet<_> = scc.iter().copied().collect();
            let start = *members.iter().next().expect("non-empty");
            let mut path = vec![start];
            let mut cur = start;
            let mut visited = BTreeSet::from([start]);
            loop {
                let next = g.neighbors(cur).filter(|n| members.contains(n)).min_by_key(|n| {
                    if *n == start {
                        0
                    } else {
                        1 + n.index()
                    }
                });
                match next {
                    Some(n) if n == start => break,
                    Some(n) if visited.insert(n) => {
                        path.push(n);
                        cur = n;
                    }
                    _ => break,
                }
            }
            cycles.push(path.into_iter().map(|n| g[n]).collect());
        }
    }
    for i in self_loops {
        cycles.push(vec![i]);
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_matrix_ids_literally_but_for_stars() {
        assert!(glob_match("test_dqn_r[*]", "test_dqn_r[seed=1]"));
        assert!(glob_match("*[alpha=0.6,*", "no_rep[alpha=0.6,seed=2]"));
        assert!(glob_match("stats", "stats"));
        assert!(glob_match("s?ats", "stats"));
        assert!(!glob_match("test_dqn_r[*]", "test_dqn_r"));
        assert!(!glob_match("stat", "stats"));
        assert!(glob_match("*", ""));
    }
}
