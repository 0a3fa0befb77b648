//! Progress for people: a live bar on a terminal, a plain line every few seconds in CI logs.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a CI log gets a progress line.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    bytes: AtomicU64,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// Progress over `total` files; a bar only when stderr is a terminal.
    pub fn new(label: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(label);
            bar
        });
        Self {
            label,
            bar,
            total,
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// One more file handled, `bytes` of it sent.
    pub fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            crate::say!("{}: {done}/{} files, {} sent", self.label, self.total, human_bytes(sent));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1.5 MB`-style sizes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[expect(clippy::cast_precision_loss, reason = "a figure for people: what goes past 2^53 is never shown")]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
