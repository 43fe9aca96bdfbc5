//! The built-in services, each checked against its RFC by a real client.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::*;

fn serve(name: &str) -> Daemon {
    Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--builtin", name])
}

fn read_all(d: &Daemon, send: &[u8]) -> Vec<u8> {
    let mut c = d.connect();
    c.write_all(send).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn echo_rfc_862_sends_back_everything_until_the_client_closes() {
    let d = serve("echo");
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "hello\r\n").unwrap(), "hello\r\n");
    // A megabyte, sent while reading, comes back intact.
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let mut writer = c.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    t.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}

#[test]
fn discard_rfc_863_answers_nothing() {
    let d = serve("discard");
    let mut c = d.connect();
    c.write_all(&[b'x'; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert!(out.is_empty(), "discard answered {} bytes", out.len());
}

#[test]
fn chargen_rfc_864_sends_rotating_72_character_lines() {
    let d = serve("chargen");
    let mut c = d.connect();
    // Two full cycles and a bit: 95 lines of 74 bytes each.
    let mut buf = vec![0u8; 74 * 200];
    c.read_exact(&mut buf).unwrap();
    let printable: Vec<u8> = (b' '..=b'~').collect();
    for (n, line) in buf.chunks(74).enumerate() {
        assert_eq!(&line[72..], b"\r\n", "line {n} does not end in CRLF");
        let expected: Vec<u8> = (0..72).map(|i| printable[(n + i) % 95]).collect();
        assert_eq!(&line[..72], &expected[..], "line {n}");
    }
    // The client leaves; the worker must notice and go back to accept.
    drop(c);
    let mut again = d.connect();
    let mut first = [0u8; 74];
    again.read_exact(&mut first).unwrap();
    assert_eq!(&first[..3], b" !\"");
}

#[test]
fn daytime_rfc_867_sends_the_date_as_ctime_and_closes() {
    let d = serve("daytime");
    let out = String::from_utf8(read_all(&d, b"")).unwrap();
    // "Wed Nov 25 17:07:29 2026\r\n"
    assert_eq!(out.len(), 26, "{out:?}");
    assert!(out.ends_with("\r\n"), "{out:?}");
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{out:?}");
    assert!(
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&fields[0]),
        "{out:?}"
    );
    assert!(
        fields[3].len() == 8 && fields[3].matches(':').count() == 2,
        "{out:?}"
    );
    let year: i32 = fields[4].parse().unwrap();
    let now_year = 1970
        + (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952) as i32;
    assert!((year - now_year).abs() <= 1, "{out:?}");
}

#[test]
fn time_rfc_868_sends_seconds_since_1900_and_closes() {
    let d = serve("time");
    let out = read_all(&d, b"");
    assert_eq!(out.len(), 4, "{out:?}");
    let theirs = u32::from_be_bytes(out.try_into().unwrap()) as u64;
    let ours = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2_208_988_800;
    assert!(
        ours.abs_diff(theirs) <= 5,
        "server says {theirs}, we say {ours}"
    );
}

#[test]
fn a_client_that_resets_does_not_take_a_worker_down() {
    let d = serve("echo");
    let before = set(&d.workers());
    for _ in 0..20 {
        let c = d.connect();
        // SO_LINGER 0: close sends RST.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    }
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "still here\n").unwrap(), "still here\n");
    assert_eq!(set(&d.workers()), before, "workers changed\n{}", d.report());
}
