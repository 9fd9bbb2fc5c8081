//! The console subscriber: a spinner per running stage on a terminal (indicatif), plain lines
//! otherwise. Writes to stderr; stdout stays for results.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{Event, Sink, Status, STATE_CHANGE};

/// Console progress.
pub struct Progress {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    overall: Option<ProgressBar>,
    fancy: bool,
    quiet: bool,
}

impl Progress {
    /// Bars on a terminal, lines otherwise; `quiet` prints only failures.
    pub fn new(quiet: bool) -> Self {
        use is_terminal::IsTerminal;
        let fancy = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if fancy {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self { multi, bars: HashMap::new(), overall: None, fancy, quiet }
    }

    fn line(&self, text: String) {
        if self.fancy {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Sink for Progress {
    fn on(&mut self, event: &Event) {
        match event {
            Event::Begin { pipeline, total } => {
                if self.fancy {
                    let pb = self.multi.add(ProgressBar::new(*total as u64));
                    pb.set_style(
                        ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} stages  {elapsed}")
                            .expect("template")
                            .progress_chars("=> "),
                    );
                    pb.set_prefix(pipeline.clone());
                    self.overall = Some(pb);
                }
            }
            Event::Started { id, kind } => {
                if self.fancy {
                    let pb = self.multi.add(ProgressBar::new(1000));
                    pb.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}").expect("template"),
                    );
                    pb.set_prefix(format!("{id} ({kind})"));
                    pb.enable_steady_tick(Duration::from_millis(120));
                    self.bars.insert(id.clone(), pb);
                }
            }
            Event::Progress { id, fraction, message } => {
                if let (false, false, Some(state)) = (self.fancy, self.quiet, message.strip_prefix(STATE_CHANGE)) {
                    self.line(format!("  {id}: {state}"));
                }
                if let Some(pb) = self.bars.get(id) {
                    pb.set_position((fraction * 1000.0) as u64);
                    pb.set_message(format!("{:>3.0}% {message}", fraction * 100.0));
                }
            }
            Event::Finished(r) => {
                if let Some(pb) = self.bars.remove(&r.id) {
                    pb.finish_and_clear();
                    self.multi.remove(&pb);
                }
                if let Some(o) = &self.overall {
                    o.inc(1);
                }
                let show = !self.quiet || matches!(r.status, Status::Failed);
                if show && r.status != Status::Cached {
                    let mark = match r.status {
                        Status::Ran => "✓",
                        Status::Failed => "✗",
                        Status::Skipped => "-",
                        Status::Aborted => "!",
                        Status::Cached => "=",
                    };
                    let extra = match (&r.error, &r.note) {
                        (Some(e), _) => format!(": {e}"),
                        (None, Some(n)) => format!(" ({n})"),
                        _ => String::new(),
                    };
                    self.line(format!("{mark} {} {} {:.2}s{extra}", r.id, r.status.as_str(), r.seconds));
                }
            }
            Event::Interrupted => self.line("interrupted: abandoning running stages; nothing partial is cached".into()),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(o) = self.overall.take() {
            o.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
