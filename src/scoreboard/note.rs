//! What a library program's handler says it is doing (`set_state`), in
//! the free half of its worker's slot, as Apache's mod_status shows the
//! request line: at most [`NOTE_BYTES`] bytes of text.
//!
//! The text usually comes from a client (a request line), so it is
//! untrusted twice over: the worker writes it sanitized (control and
//! bidirectional-override characters become `?`, cut on a UTF-8 boundary),
//! and the reader sanitizes again what it reads, because a worker runs as
//! a user the master does not trust and may write any bytes into its slot.
//! `status` never prints a control byte to a terminal.
//!
//! The words are a seqlock, without a lock: the one writer (the worker)
//! makes the sequence word odd, stores the length and the bytes, and makes
//! it even again; a reader that saw an odd sequence, or a different one
//! after reading, read a torn note and tries again, a few times, then
//! shows nothing. A worker killed in the middle leaves the sequence odd:
//! nothing is shown until the master clears the slot as it reaps it.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// The longest note, in bytes.
pub const NOTE_BYTES: usize = 48;

/// Words of a note: the sequence, the length, then the bytes.
pub(super) const NOTE_WORDS: usize = 2 + NOTE_BYTES / 8;

/// How many times a reader tries before it gives up on a note being
/// rewritten.
const READ_TRIES: usize = 16;

/// Whether `c` must not reach a terminal: C0, DEL and C1 controls, and the
/// characters that reorder text (U+200E, U+200F, U+202A to U+202E, U+2066
/// to U+2069), which could make a line say what it does not.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as a note shows it: each hostile character replaced by `?`, then
/// cut to at most [`NOTE_BYTES`] bytes on a character boundary.
pub fn sanitize(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if hostile(c) { '?' } else { c })
        .collect();
    let mut end = clean.len().min(NOTE_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean.truncate(end);
    clean
}

/// Writes `text`, sanitized, into `words` (the note's [`NOTE_WORDS`]).
/// Only the slot's worker writes, so there is one writer at a time.
pub(super) fn write(words: &[AtomicU64], text: &str) {
    let clean = sanitize(text);
    let mut bytes = [0u8; NOTE_BYTES];
    bytes[..clean.len()].copy_from_slice(clean.as_bytes());
    let seq = words[0].load(Ordering::Relaxed);
    // Odd: a reader that sees this, or sees it change, retries.
    let writing = seq | 1;
    words[0].store(writing, Ordering::Relaxed);
    fence(Ordering::Release);
    words[1].store(clean.len() as u64, Ordering::Relaxed);
    for (word, chunk) in words[2..NOTE_WORDS].iter().zip(bytes.chunks_exact(8)) {
        let chunk: [u8; 8] = chunk.try_into().expect("chunks of eight");
        word.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
    }
    words[0].store(writing.wrapping_add(1), Ordering::Release);
}

/// The note in `words`, sanitized; `None` when there is none, or when it
/// is being rewritten every time we look.
pub(super) fn read(words: &[AtomicU64]) -> Option<String> {
    for _ in 0..READ_TRIES {
        let before = words[0].load(Ordering::Acquire);
        if before & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let len = words[1].load(Ordering::Relaxed);
        let mut bytes = [0u8; NOTE_BYTES];
        for (word, chunk) in words[2..NOTE_WORDS].iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        if words[0].load(Ordering::Relaxed) != before {
            continue;
        }
        let len = (len as usize).min(NOTE_BYTES);
        if len == 0 {
            return None;
        }
        // A worker may have written anything: read it as text and
        // sanitize it again.
        return Some(sanitize(&String::from_utf8_lossy(&bytes[..len])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<AtomicU64> {
        (0..NOTE_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_note_round_trips_and_an_empty_one_is_none() {
        let w = words();
        assert_eq!(read(&w), None);
        write(&w, "GET /index.html");
        assert_eq!(read(&w).as_deref(), Some("GET /index.html"));
        write(&w, "");
        assert_eq!(read(&w), None);
        assert_eq!(w[0].load(Ordering::Relaxed) & 1, 0);
    }

    #[test]
    fn control_and_reordering_characters_never_come_back() {
        let w = words();
        write(&w, "GET /\x1b[2J\r\n\u{7f}\u{9b}31m\u{202e}txt.exe");
        let note = read(&w).unwrap();
        assert_eq!(note, "GET /?[2J????31m?txt.exe");
        assert!(!note.chars().any(hostile));
    }

    #[test]
    fn a_long_note_is_cut_on_a_character_boundary() {
        let w = words();
        // 47 bytes of ASCII, then a two-byte character: cut before it.
        let text = format!("{}é and more", "a".repeat(47));
        write(&w, &text);
        assert_eq!(read(&w).unwrap(), "a".repeat(47));
        write(&w, &"€".repeat(40));
        assert_eq!(read(&w).unwrap(), "€".repeat(16));
    }

    #[test]
    fn what_a_hostile_worker_writes_is_sanitized_by_the_reader() {
        let w = words();
        // Raw bytes, as a worker could store them without `write`: an
        // escape, invalid UTF-8, and a length past the end.
        let mut raw = [0u8; NOTE_BYTES];
        raw[..6].copy_from_slice(b"\x1b]0;\xff\x07");
        for (word, chunk) in w[2..].iter().zip(raw.chunks_exact(8)) {
            word.store(
                u64::from_le_bytes(chunk.try_into().unwrap()),
                Ordering::Relaxed,
            );
        }
        w[1].store(u64::MAX, Ordering::Relaxed);
        let note = read(&w).unwrap();
        assert!(!note.chars().any(hostile), "{note:?}");
        assert!(note.starts_with("?]0;\u{fffd}?"), "{note:?}");
        assert!(note.len() <= NOTE_BYTES);
    }

    #[test]
    fn a_note_being_written_is_not_read() {
        let w = words();
        write(&w, "GET /a");
        // A writer in the middle (or killed there): the sequence is odd.
        w[0].fetch_add(1, Ordering::Relaxed);
        assert_eq!(read(&w), None);
        w[0].fetch_add(1, Ordering::Relaxed);
        assert_eq!(read(&w).as_deref(), Some("GET /a"));
    }

    #[test]
    fn a_reader_racing_a_writer_sees_whole_notes_only() {
        let w = std::sync::Arc::new(words());
        let notes = [
            "GET /first",
            "POST /a/much/longer/second/path/than/the/first",
        ];
        let writer = {
            let w = std::sync::Arc::clone(&w);
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    write(&w, notes[i % 2]);
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() {
            if let Some(note) = read(&w) {
                assert!(notes.contains(&note.as_str()), "torn: {note:?}");
                seen += 1;
            }
        }
        writer.join().unwrap();
        assert!(seen > 0);
    }
}
