//! What `preforkd compare` teaches, checked as a teacher would: figures
//! that hold from one run to the next, the herd made visible, and the
//! book's order of chapter 30.

use crate::compare;

/// One model's row in a compare report.
fn row<'a>(rows: &'a [serde_json::Value], model: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no row for {model} in {rows:?}"))
}

/// The median and half-range of a figure.
fn figure(v: &serde_json::Value) -> (f64, f64) {
    let median = v["median"].as_f64().unwrap_or_else(|| panic!("{v}"));
    let half = (v["max"].as_f64().unwrap() - v["min"].as_f64().unwrap()) / 2.0;
    (median, half)
}

#[test]
fn two_runs_back_to_back_agree_within_their_printed_spread() {
    let args = [
        "--models",
        "iterative,fork,prefork,pool",
        "--clients",
        "1",
        "--connections",
        "400",
        "--repeat",
        "5",
    ];
    let (first, second) = (compare(&args), compare(&args));
    for model in ["fork", "prefork", "pool"] {
        let (a, b) = (row(&first, model), row(&second, model));
        // The work done holds where the time does not: fork's pages
        // copied on write are the same count in both runs, within the
        // larger spread or, where the rounds agreed closely, half a fault
        // and a tenth (a server's start, taken off as its idle run, varies
        // by some hundreds of faults).
        let ((fa, ha), (fb, hb)) = (
            figure(&a["faults_per_connection"]),
            figure(&b["faults_per_connection"]),
        );
        eprintln!("{model}: {fa:.1} ±{ha:.1} then {fb:.1} ±{hb:.1} faults per connection");
        assert!(
            (fa - fb).abs() <= ha.max(hb).max(0.5 + fa.max(fb) / 10.0),
            "{model}: {fa:.1} ±{ha:.1} and {fb:.1} ±{hb:.1} faults per connection"
        );
        if model == "fork" {
            assert!(
                fa >= 5.0,
                "fork: {fa:.1} faults per connection, too few for a fork"
            );
        }
        for r in [a, b] {
            let (median, half) = figure(&r["above_iterative_us"]);
            // Never a negative cost: a range that reaches zero is ≈0.
            assert_eq!(
                r["within_noise"].as_bool().unwrap(),
                median - half <= 0.0,
                "{model}: {r}"
            );
        }
        if a["within_noise"] == true || b["within_noise"] == true {
            continue;
        }
        let ((ma, ha), (mb, hb)) = (
            figure(&a["above_iterative_us"]),
            figure(&b["above_iterative_us"]),
        );
        eprintln!("{model}: {ma:.1} ±{ha:.1} then {mb:.1} ±{hb:.1} µs above iterative");
        // Within the larger spread; or, where the machine itself drifted
        // between the runs (a whole run of fork moved by a third on CI's
        // quiet machine: the rounds of one run cannot see that), within a
        // third of each other. Issue 15 stays open on this.
        assert!(
            (ma - mb).abs() <= ha.max(hb) || (ma - mb).abs() <= ma.max(mb) / 3.0,
            "{model}: {ma:.1} ±{ha:.1} and {mb:.1} ±{hb:.1}: the medians lie outside each other's spread"
        );
    }
}

#[test]
fn the_herd_shows_in_wakeups_per_connection() {
    // Eight idle workers and one client: a blocking accept(2) wakes the one
    // worker that gets the connection; poll(2) on the shared socket wakes
    // them all, and all but one find nothing. daytime reads nothing, so no
    // worker also sleeps in read(2) waiting for a request.
    let rows = compare(&[
        "--models",
        "prefork,prefork-poll,prefork-epoll-exclusive",
        "--clients",
        "1",
        "--workers",
        "8",
        "--service",
        "daytime",
        "--connections",
        "500",
        "--repeat",
        "3",
    ]);
    let wakeups = |model: &str| figure(&row(&rows, model)["wakeups_per_connection"]).0;
    let (blocking, poll, exclusive) = (
        wakeups("prefork"),
        wakeups("prefork-poll"),
        wakeups("prefork-epoll-exclusive"),
    );
    eprintln!("wake-ups per connection: prefork {blocking:.1}, prefork-poll {poll:.1}, prefork-epoll-exclusive {exclusive:.1}");
    assert!((0.5..1.6).contains(&blocking), "prefork: {blocking:.2}");
    assert!(
        (0.5..1.6).contains(&exclusive),
        "prefork-epoll-exclusive: {exclusive:.2}"
    );
    assert!(poll >= 3.0, "prefork-poll: {poll:.2}, not a herd");
}

#[test]
fn stevens_order_holds_in_two_runs() {
    // The book's lesson, Figure 30.1: a fork per client costs far more than
    // a thread per client, which costs more than any pool; and a pool costs
    // a fifth of fork or less. Twice, with the same flags.
    const POOLS: [&str; 6] = [
        "prefork",
        "prefork-lock",
        "prefork-mutex",
        "prefork-pass",
        "pool-lock",
        "pool-pass",
    ];
    for run in 1..=2 {
        let rows = compare(&["--stevens", "--repeat", "3"]);
        let cost = |model: &str| figure(&row(&rows, model)["above_iterative_us"]).0;
        let (fork, threads) = (cost("fork"), cost("threads"));
        eprintln!(
            "run {run}: fork {fork:.1}, threads {threads:.1}, {}",
            POOLS
                .iter()
                .map(|p| format!("{p} {:.1}", cost(p)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            fork > 2.0 * threads,
            "run {run}: fork {fork:.1} ≫ threads {threads:.1}"
        );
        for pool in POOLS {
            assert!(
                threads > cost(pool),
                "run {run}: threads {threads:.1} > {pool} {:.1}",
                cost(pool)
            );
            let times = row(&rows, pool)["fork_times"].as_f64().unwrap();
            assert!(
                times >= 5.0,
                "run {run}: fork is {times:.1}× {pool}, not 5×"
            );
        }
    }
}
