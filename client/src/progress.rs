//! Per-layer progress of pulls, pushes and copies: bars on a terminal, one
//! line per state change otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use hull_proto::hull::images::v1::layer_progress::Action;
use hull_proto::hull::images::v1::LayerProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub enum Progress {
    Quiet,
    Lines(HashMap<String, Action>),
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
}

impl Progress {
    /// Chooses bars when standard output is a terminal, plain lines
    /// otherwise, and nothing with `quiet`.
    pub fn new(quiet: bool) -> Self {
        if quiet {
            Progress::Quiet
        } else if std::io::stdout().is_terminal() {
            Progress::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                bars: HashMap::new(),
            }
        } else {
            Progress::Lines(HashMap::new())
        }
    }

    pub fn update(&mut self, event: &LayerProgress) {
        let action = event.action();
        match self {
            Progress::Quiet => {}
            Progress::Lines(last) => {
                if last.get(&event.id) != Some(&action) {
                    last.insert(event.id.clone(), action);
                    println!("{}", plain_line(event, action));
                }
            }
            Progress::Bars { multi, bars } => {
                let bar = bars.entry(event.id.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(event.total));
                    bar.set_style(bar_style());
                    bar.set_prefix(event.id.clone());
                    bar
                });
                if event.total > 0 {
                    bar.set_length(event.total);
                }
                bar.set_position(event.current);
                bar.set_message(action_name(action));
                if matches!(action, Action::Done | Action::Exists | Action::Mounted) {
                    bar.finish();
                }
            }
        }
    }

    /// Stops drawing bars, leaving them on screen.
    pub fn finish(&mut self) {
        if let Progress::Bars { bars, .. } = self {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:12} {msg:12} [{bar:30}] {bytes:>10}/{total_bytes:10}")
        .expect("the progress template is valid")
        .progress_chars("=> ")
}

fn plain_line(event: &LayerProgress, action: Action) -> String {
    let name = action_name(action);
    if event.total > 0 && !matches!(action, Action::Resolving | Action::Waiting) {
        format!("{}: {name} {} bytes", event.id, event.total)
    } else {
        format!("{}: {name}", event.id)
    }
}

pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Unspecified => "Working",
        Action::Resolving => "Resolving",
        Action::Waiting => "Waiting",
        Action::Downloading => "Downloading",
        Action::Verifying => "Verifying",
        Action::Unpacking => "Unpacking",
        Action::Uploading => "Uploading",
        Action::Exists => "Exists",
        Action::Mounted => "Mounted",
        Action::Done => "Done",
    }
}
