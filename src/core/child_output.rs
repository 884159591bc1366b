//! What a plugin prints on stdout and stderr, turned into log lines:
//! split at newlines, each line cut to a bounded length and escaped,
//! rate-limited, and the last few kept for the report of its death.
//!
//! Pure: bytes and the clock in, lines to write out. The memory held per
//! plugin is bounded (one partial line per stream, [`TAIL_LINES`] lines),
//! whatever it prints; `src/daemon/processes.rs` reads the pipes.

use crate::core::log_policy::{RateLimiter, Verdict};
use crate::core::wire;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A line longer than this (in bytes) is cut, and the rest of it skipped.
pub(crate) const MAX_LINE_BYTES: usize = 1024;
/// The lines kept to show when the plugin dies.
pub(crate) const TAIL_LINES: usize = 10;
/// At most this many lines of one plugin are logged per [`LOG_WINDOW`];
/// the others are counted, and kept in the tail.
pub(crate) const LOG_BURST: u32 = 20;
pub(crate) const LOG_WINDOW: Duration = Duration::from_secs(10);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// A line to log, and how many lines were suppressed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub stream: Stream,
    pub text: String,
    pub suppressed: u64,
}

#[derive(Debug, Clone, Default)]
struct Partial {
    bytes: Vec<u8>,
    /// The current line was too long: skip up to its newline.
    skipping: bool,
}

/// One plugin's output.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    partial: [Partial; 2],
    tail: VecDeque<(Stream, String)>,
    limiter: RateLimiter,
}

impl Default for Output {
    fn default() -> Output {
        Output {
            partial: [Partial::default(), Partial::default()],
            tail: VecDeque::with_capacity(TAIL_LINES),
            limiter: RateLimiter::new(LOG_BURST, LOG_WINDOW),
        }
    }
}

impl Output {
    /// Takes bytes read from `stream`; returns the lines to log now.
    pub(crate) fn feed(&mut self, stream: Stream, bytes: &[u8], now: Instant) -> Vec<Line> {
        let mut complete = Vec::new();
        let Some(partial) = self.partial.get_mut(stream.index()) else {
            return Vec::new();
        };
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, ends) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            if !partial.skipping {
                let room = MAX_LINE_BYTES.saturating_sub(partial.bytes.len());
                partial.bytes.extend(body.iter().take(room));
                if body.len() > room {
                    complete.push(cut(&partial.bytes, true));
                    partial.bytes.clear();
                    partial.skipping = true;
                }
            }
            if ends {
                if !partial.skipping {
                    complete.push(cut(&partial.bytes, false));
                }
                partial.bytes.clear();
                partial.skipping = false;
            }
        }
        complete
            .into_iter()
            .filter_map(|text| self.keep(stream, text, now))
            .collect()
    }

    /// The stream closed: what is left of its last line, if anything.
    pub(crate) fn finish(&mut self, stream: Stream, now: Instant) -> Vec<Line> {
        let Some(partial) = self.partial.get_mut(stream.index()) else {
            return Vec::new();
        };
        let rest = std::mem::take(partial);
        if rest.bytes.is_empty() {
            return Vec::new();
        }
        self.keep(stream, cut(&rest.bytes, false), now).into_iter().collect()
    }

    fn keep(&mut self, stream: Stream, text: String, now: Instant) -> Option<Line> {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back((stream, text.clone()));
        match self.limiter.check(now) {
            Verdict::Write { suppressed } => Some(Line {
                stream,
                text,
                suppressed,
            }),
            Verdict::Suppress => None,
        }
    }

    /// The last lines printed, oldest first.
    pub(crate) fn tail(&self) -> impl Iterator<Item = (Stream, &str)> + '_ {
        self.tail.iter().map(|(stream, text)| (*stream, text.as_str()))
    }
}

/// A line as text for the log: invalid UTF-8 replaced, control characters
/// escaped (a plugin must not forge log lines), `...` when it was cut.
fn cut(bytes: &[u8], was_cut: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut line = wire::truncate(text.trim_end_matches('\r'), MAX_LINE_BYTES);
    if was_cut && !line.ends_with("...") {
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|line| line.text.as_str()).collect()
    }

    #[test]
    fn lines_are_split_across_reads_per_stream() {
        let now = Instant::now();
        let mut output = Output::default();
        assert!(output.feed(Stream::Stdout, b"hel", now).is_empty());
        assert_eq!(texts(&output.feed(Stream::Stderr, b"err\n", now)), ["err"]);
        assert_eq!(
            texts(&output.feed(Stream::Stdout, b"lo\r\nworld\nand", now)),
            ["hello", "world"]
        );
        assert_eq!(texts(&output.finish(Stream::Stdout, now)), ["and"]);
        assert!(output.finish(Stream::Stdout, now).is_empty());
        let tail: Vec<_> = output.tail().collect();
        assert_eq!(
            tail,
            [
                (Stream::Stderr, "err"),
                (Stream::Stdout, "hello"),
                (Stream::Stdout, "world"),
                (Stream::Stdout, "and")
            ]
        );
    }

    #[test]
    fn a_line_without_end_is_cut_and_its_rest_skipped() {
        let now = Instant::now();
        let mut output = Output::default();
        let mut logged = Vec::new();
        for _ in 0..1000 {
            logged.extend(output.feed(Stream::Stdout, &[b'x'; 4096], now));
        }
        logged.extend(output.feed(Stream::Stdout, b"xx\nnext\n", now));
        assert_eq!(logged.len(), 2, "one cut line, then the next");
        assert_eq!(logged[0].text.len(), MAX_LINE_BYTES + 3);
        assert!(logged[0].text.ends_with("..."));
        assert_eq!(logged[1].text, "next");
        assert!(output.partial.iter().all(|p| p.bytes.capacity() <= 2 * MAX_LINE_BYTES));
    }

    #[test]
    fn a_flood_is_rate_limited_and_the_tail_bounded() {
        let start = Instant::now();
        let mut output = Output::default();
        let flood = b"spam\n".repeat(10_000);
        let logged = output.feed(Stream::Stdout, &flood, start);
        assert_eq!(logged.len(), LOG_BURST as usize);
        assert_eq!(output.tail().count(), TAIL_LINES);
        let later = output.feed(Stream::Stderr, b"Traceback\n", start + LOG_WINDOW);
        assert_eq!(later[0].suppressed, 10_000 - u64::from(LOG_BURST));
        assert_eq!(output.tail().last(), Some((Stream::Stderr, "Traceback")));
    }

    #[test]
    fn control_characters_cannot_forge_a_log_line() {
        let mut output = Output::default();
        let lines = output.feed(Stream::Stdout, b"a\rinfo: fake\x1b[2J\xff\n", Instant::now());
        assert_eq!(lines[0].text, "a\\rinfo: fake\\u{1b}[2J\u{fffd}");
    }
}
