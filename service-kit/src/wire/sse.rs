//! The `text/event-stream` format as the WHATWG HTML standard reads it
//! ("Interpreting an event stream"), incremental over bytes: a line ends
//! in CRLF, LF or CR, even when a read cuts a CRLF in two; a byte-order
//! mark before the first line is skipped; `:` starts a comment; a field's
//! value loses one leading space; a blank line ends a frame. Text is UTF-8,
//! with U+FFFD for what is not.
//!
//! Unlike a browser's EventSource, [`Parser`] hands over every frame, not
//! only those with data, with everything it held (comments, `retry:`, how
//! many `data:` lines): loadgen applies EventSource's rules itself (an
//! event is a frame with data; an `id:` moves the last event id), and
//! testkit's tests check the frames as sent.
//!
//! Memory: a line that arrives whole within one read is parsed where it
//! lies; only a line cut by the end of a read is copied, into the parser's
//! line buffer. A frame's fields live in strings that are cleared, not
//! freed, between frames, so a long-lived stream allocates nothing once
//! they have grown to its largest frame.

use std::borrow::Cow;

const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();

/// One line of an event stream, its line ending gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// Ends the frame.
    Blank,
    /// What follows the leading `:`.
    Comment(&'a [u8]),
    /// `name: value`, one leading space off the value; a line without a
    /// colon is a name with an empty value.
    Field { name: &'a [u8], value: &'a [u8] },
}

impl<'a> Line<'a> {
    pub fn parse(line: &'a [u8]) -> Self {
        if line.is_empty() {
            return Line::Blank;
        }
        match line.iter().position(|&byte| byte == b':') {
            Some(0) => Line::Comment(&line[1..]),
            Some(colon) => {
                let value = &line[colon + 1..];
                Line::Field {
                    name: &line[..colon],
                    value: value.strip_prefix(b" ").unwrap_or(value),
                }
            }
            None => Line::Field {
                name: line,
                value: b"",
            },
        }
    }
}

/// The lines up to a blank one: an event, a lone `retry:`, comments.
///
/// Invariant: `data` and `comments` hold each value followed by LF (the
/// standard's data buffer; no value holds an LF of its own, being a line),
/// and `data_lines` counts the data values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Lines in the frame, of any kind (unknown fields too).
    lines: usize,
    id: String,
    has_id: bool,
    event: String,
    has_event: bool,
    data: String,
    data_lines: usize,
    retry: Option<u64>,
    comments: String,
}

impl Frame {
    /// The last `id:` (one holding NUL is ignored, as the standard says).
    pub fn id(&self) -> Option<&str> {
        self.has_id.then_some(self.id.as_str())
    }

    /// The last `event:`.
    pub fn event(&self) -> Option<&str> {
        self.has_event.then_some(self.event.as_str())
    }

    /// The `data:` values joined with LF; `None` without any (a browser
    /// dispatches no event then).
    pub fn data(&self) -> Option<&str> {
        (self.data_lines > 0).then(|| &self.data[..self.data.len() - 1])
    }

    /// How many `data:` lines the frame had.
    pub fn data_lines(&self) -> usize {
        self.data_lines
    }

    /// The last `retry:` that was all ASCII digits (others are ignored).
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The comments, in order, each without its leading `:`.
    pub fn comments(&self) -> impl Iterator<Item = &str> {
        self.comments.split_terminator('\n')
    }

    /// No line yet.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Forgets the frame; its strings keep their capacity.
    pub fn clear(&mut self) {
        self.lines = 0;
        self.id.clear();
        self.has_id = false;
        self.event.clear();
        self.has_event = false;
        self.data.clear();
        self.data_lines = 0;
        self.retry = None;
        self.comments.clear();
    }

    /// Adds `line`; answers whether it ended the frame (a blank line after
    /// at least one other: blank lines between frames end nothing).
    pub fn push(&mut self, line: Line<'_>) -> bool {
        match line {
            Line::Blank => return !self.is_empty(),
            Line::Comment(text) => {
                self.comments.push_str(&text_of(text));
                self.comments.push('\n');
            }
            Line::Field { name, value } => self.set_field(name, value),
        }
        self.lines += 1;
        false
    }

    fn set_field(&mut self, name: &[u8], value: &[u8]) {
        match name {
            b"data" => {
                self.data.push_str(&text_of(value));
                self.data.push('\n');
                self.data_lines += 1;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&text_of(value));
                self.has_event = true;
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.push_str(&text_of(value));
                self.has_id = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All digits, so only an overflow fails to parse: ignored.
                if let Ok(millis) = text_of(value).parse() {
                    self.retry = Some(millis);
                }
            }
            _ => {}
        }
    }
}

/// UTF-8, with U+FFFD for what is not; borrowed when it is valid.
fn text_of(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Splits bytes into lines across reads.
#[derive(Debug, Default)]
struct Lines {
    /// The start of a line cut by the end of a read.
    partial: Vec<u8>,
    /// `partial` holds a whole line handed out last time: clear it first.
    partial_handed_out: bool,
    /// The last line ended in CR: an LF opening the next read belongs to it.
    after_cr: bool,
    /// A line was handed out already (the byte-order mark can only lead
    /// the first).
    started: bool,
}

impl Lines {
    /// The next whole line in `input` (which moves past it); `None` once
    /// `input` is used up, its unfinished line kept for the next read.
    fn next<'s, 'i: 's>(&'s mut self, input: &mut &'i [u8]) -> Option<&'s [u8]> {
        if std::mem::take(&mut self.partial_handed_out) {
            self.partial.clear();
        }
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                *input = &input[1..];
            }
        }
        let bytes: &'i [u8] = input;
        let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') else {
            self.partial.extend_from_slice(bytes);
            *input = &[];
            return None;
        };
        let mut next = end + 1;
        if bytes[end] == b'\r' {
            // The LF of a CRLF is skipped now if this read holds it, else
            // when the next read begins with it.
            if bytes.get(next) == Some(&b'\n') {
                next += 1;
            } else {
                self.after_cr = next == bytes.len();
            }
        }
        *input = &bytes[next..];
        let first = !std::mem::replace(&mut self.started, true);
        let line: &'s [u8] = if self.partial.is_empty() {
            &bytes[..end]
        } else {
            self.partial.extend_from_slice(&bytes[..end]);
            self.partial_handed_out = true;
            &self.partial
        };
        if first {
            Some(line.strip_prefix(BYTE_ORDER_MARK).unwrap_or(line))
        } else {
            Some(line)
        }
    }
}

/// Frames out of an event stream's bytes, as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    lines: Lines,
    frame: Frame,
    /// `frame` was handed out: clear it before the next line.
    frame_handed_out: bool,
}

impl Parser {
    /// The next frame ended in `input`, which moves past it; `None` once
    /// `input` is used up (what it began is kept for the next call).
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Option<&Frame> {
        if std::mem::take(&mut self.frame_handed_out) {
            self.frame.clear();
        }
        while let Some(line) = self.lines.next(input) {
            if self.frame.push(Line::parse(line)) {
                self.frame_handed_out = true;
                return Some(&self.frame);
            }
        }
        None
    }

    /// The stream ended: the frame it was in the middle of, if a line of
    /// it came whole. A browser drops such a frame; a test may want it.
    pub fn end(&mut self) -> Option<&Frame> {
        if std::mem::take(&mut self.frame_handed_out) {
            self.frame.clear();
        }
        self.lines = Lines::default();
        if self.frame.is_empty() {
            return None;
        }
        self.frame_handed_out = true;
        Some(&self.frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame of `wire` fed in pieces of `piece` bytes, then the one
    /// the end cut short (if any).
    fn frames(wire: &[u8], piece: usize) -> Vec<Frame> {
        let mut parser = Parser::default();
        let mut frames = Vec::new();
        for mut bytes in wire.chunks(piece) {
            while let Some(frame) = parser.next_frame(&mut bytes) {
                frames.push(frame.clone());
            }
            assert!(bytes.is_empty());
        }
        frames.extend(parser.end().cloned());
        frames
    }

    /// Parses `wire` whole and in every piece size; all must agree.
    fn frames_whatever_the_reads(wire: &[u8]) -> Vec<Frame> {
        let whole = frames(wire, wire.len().max(1));
        for piece in 1..wire.len() {
            assert_eq!(frames(wire, piece), whole, "pieces of {piece}");
        }
        whole
    }

    #[test]
    fn an_event_keeps_its_id_name_and_data() {
        let frames = frames_whatever_the_reads(b"id: 7\nevent: created\ndata: {\"a\":1}\n\n");
        assert_eq!(frames.len(), 1);
        let frame = &frames[0];
        assert_eq!(frame.id(), Some("7"));
        assert_eq!(frame.event(), Some("created"));
        assert_eq!(frame.data(), Some("{\"a\":1}"));
        assert_eq!((frame.data_lines(), frame.retry()), (1, None));
        assert_eq!(frame.comments().count(), 0);
    }

    #[test]
    fn data_lines_join_with_line_feeds_and_are_counted() {
        let frames = frames_whatever_the_reads(b"data: one\ndata\ndata:  two\ndata:three\n\n");
        assert_eq!(frames[0].data(), Some("one\n\n two\nthree"));
        assert_eq!(frames[0].data_lines(), 4);
        let empty = frames_whatever_the_reads(b"data:\n\n");
        assert_eq!((empty[0].data(), empty[0].data_lines()), (Some(""), 1));
    }

    #[test]
    fn comments_and_a_lone_retry_are_frames_of_their_own() {
        let frames = frames_whatever_the_reads(b"retry: 2000\n\n: hb\n:\n\n\n\nevent: x\n\n");
        assert_eq!(frames.len(), 3, "blank lines between frames end nothing");
        assert_eq!(frames[0].retry(), Some(2000));
        assert_eq!(frames[0].data(), None);
        assert_eq!(frames[1].comments().collect::<Vec<_>>(), [" hb", ""]);
        assert_eq!((frames[2].event(), frames[2].data()), (Some("x"), None));
    }

    #[test]
    fn crlf_lf_and_cr_all_end_lines_even_when_a_read_cuts_a_crlf() {
        let wire = b"id: 1\r\ndata: a\rdata: b\ndata: c\r\n\r\nid: 2\rdata: d\r\r: e\n\n";
        let frames = frames_whatever_the_reads(wire);
        assert_eq!(frames.len(), 3);
        assert_eq!(
            (frames[0].id(), frames[0].data()),
            (Some("1"), Some("a\nb\nc"))
        );
        assert_eq!((frames[1].id(), frames[1].data()), (Some("2"), Some("d")));
        assert_eq!(frames[2].comments().collect::<Vec<_>>(), [" e"]);

        // A CR at the end of one read and an LF at the start of the next
        // are one line ending, not a line ending and a blank line.
        let mut parser = Parser::default();
        let mut first: &[u8] = b"data: x\r";
        assert!(parser.next_frame(&mut first).is_none());
        let mut second: &[u8] = b"\ndata: y\r\n\r\n";
        assert_eq!(parser.next_frame(&mut second).unwrap().data(), Some("x\ny"));
    }

    #[test]
    fn retry_takes_digits_only_and_id_refuses_nul() {
        let frames =
            frames_whatever_the_reads(b"retry: 100\nretry: 2s\nretry: -1\nretry:\nid: a\0b\n\n");
        assert_eq!((frames[0].retry(), frames[0].id()), (Some(100), None));
        let frames = frames_whatever_the_reads(b"retry: 99999999999999999999999\nid\n\n");
        assert_eq!((frames[0].retry(), frames[0].id()), (None, Some("")));
    }

    #[test]
    fn unknown_fields_and_a_leading_byte_order_mark_are_ignored() {
        let frames = frames_whatever_the_reads("\u{feff}data: a\nfoo: bar\n\nfoo\n\n".as_bytes());
        assert_eq!(frames[0].data(), Some("a"));
        assert!(frames[1].data().is_none() && !frames[1].is_empty());
        let later = frames_whatever_the_reads("data: a\n\n\u{feff}data: b\n\n".as_bytes());
        assert_eq!(
            later[1].data(),
            None,
            "a mark after the start is part of a name"
        );
    }

    #[test]
    fn text_that_is_not_utf8_becomes_replacement_characters() {
        let frames = frames_whatever_the_reads(b"data: caf\xc3\xa9 \xff\n\n");
        assert_eq!(frames[0].data(), Some("café \u{fffd}"));
    }

    #[test]
    fn the_end_hands_over_a_frame_cut_short_once() {
        let mut parser = Parser::default();
        let mut bytes: &[u8] = b"event: last\ndata: cut";
        assert!(parser.next_frame(&mut bytes).is_none());
        let frame = parser.end().unwrap();
        assert_eq!((frame.event(), frame.data()), (Some("last"), None));
        assert!(parser.end().is_none());
    }

    #[test]
    fn a_frame_in_one_read_is_parsed_in_place_and_buffers_are_reused() {
        let mut parser = Parser::default();
        let wire = b"id: 1\nevent: tick\ndata: 0123456789\n\n";
        let mut bytes: &[u8] = wire;
        parser.next_frame(&mut bytes).unwrap();
        let data_at = parser.frame.data.as_ptr();
        for _ in 0..100 {
            let mut bytes: &[u8] = wire;
            assert_eq!(
                parser.next_frame(&mut bytes).unwrap().data(),
                Some("0123456789")
            );
            assert_eq!(
                parser.frame.data.as_ptr(),
                data_at,
                "the data string is reused"
            );
        }
        assert_eq!(
            parser.lines.partial.capacity(),
            0,
            "no line was cut, none copied"
        );
    }
}
