//! `oodscope serve` under load (issue sections 3 and 5), bounded in count and time: concurrency 1,
//! 8 and 64 with no error and a flat RSS; 503 with Retry-After from a full queue; slow clients
//! sending partial bodies do not stall the others; clients that disconnect mid-request; SIGTERM
//! under load answers every accepted request and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use oodscope_serve::loadgen::{self, LoadSpec, Payload};

use crate::serve_harness::{NAME, Server, assert_same, binary_request, bound, checked, demo_images, outputs, read_all};

/// Requests per concurrency level: enough for the server's allocations to settle, a few seconds
/// each on two cores.
const REQUESTS: usize = 2000;

fn spec(server: &Server, payloads: Vec<Payload>, concurrency: usize, requests: usize) -> LoadSpec {
    LoadSpec {
        addr: server.addr,
        path: format!("/v2/models/{NAME}/infer"),
        payloads,
        concurrency,
        requests,
    }
}

#[test]
fn concurrency_1_8_and_64_without_errors_and_a_flat_rss() {
    let server = Server::start(&[]);
    let files = demo_images(8, 8);
    let reference = checked(&files);
    let bytes = read_all(&files);
    // One image per request, as most clients send.
    let payloads: Vec<Payload> = bytes.iter().map(|b| binary_request(std::slice::from_ref(b))).collect();
    // Warm up (libtorch's first batches allocate their buffers), then the resident size at start.
    let warm = loadgen::run_load(&spec(&server, payloads.clone(), 8, 400)).unwrap();
    assert_eq!(warm.count(200), 400, "{warm:?}");
    let start_kib = server.rss_kib();
    for concurrency in [1, 8, 64] {
        let report = loadgen::run_load(&spec(&server, payloads.clone(), concurrency, REQUESTS)).unwrap();
        assert_eq!(report.transport_errors, 0, "{:?}", report.first_transport_error);
        assert_eq!(
            report.count(200),
            REQUESTS,
            "concurrency {concurrency}: {:?}",
            report.statuses
        );
        eprintln!(
            "serve load: concurrency {concurrency}: {REQUESTS} requests in {:.2} s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            report.elapsed.as_secs_f64(),
            report.throughput(),
            report.latency_quantile(0.5).unwrap().as_secs_f64() * 1e3,
            report.latency_quantile(0.99).unwrap().as_secs_f64() * 1e3,
        );
    }
    let end_kib = server.rss_kib();
    eprintln!(
        "serve load: RSS {start_kib} KiB after warm-up, {end_kib} KiB after {} requests",
        3 * REQUESTS
    );
    // Flat: 6000 requests may not grow it by more than 64 MiB (a leak of one 3 KiB image per
    // request would not show; one of a decoded batch per request would).
    assert!(
        end_kib < start_kib + 64 * 1024,
        "RSS grew from {start_kib} KiB to {end_kib} KiB"
    );
    // Still the same verdicts after the load.
    assert_same(&outputs(&server.infer(&binary_request(&bytes))), &reference);
    let batches = server.metric("oodscope_batch_size_count").unwrap();
    let images = server.metric("oodscope_batch_size_sum").unwrap();
    assert!(images >= (3 * REQUESTS + 400) as f64);
    assert!(
        images / batches > 1.5,
        "concurrent requests were batched together: {images} images in {batches} batches"
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after_at_once() {
    let server = Server::start(&["--max-queue", "1"]);
    let files = demo_images(2, 0);
    let reference = checked(&files);
    let payload = binary_request(&read_all(&files));
    // The one place is held by a request whose body is still arriving.
    let held = Held::send_head(&server, &payload);
    wait_for_queue_depth(&server, 1);
    // The held request cannot finish before this test sends the rest of its body: a server that
    // queued the others instead of refusing them at once would not answer them at all.
    for _ in 0..3 {
        let refused = server.infer(&payload);
        assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(refused.json()["error"].as_str().unwrap().contains("--max-queue"));
    }
    assert_same(&outputs(&held.finish()), &reference);
    assert_same(&outputs(&server.infer(&payload)), &reference);
    assert_eq!(server.metric("oodscope_errors_total{kind=\"queue_full\"}"), Some(3.0));
    // Under a load generator: only 200s and intended 503s.
    let report = loadgen::run_load(&spec(&server, vec![payload], 8, 200)).unwrap();
    assert_eq!(report.transport_errors, 0, "{:?}", report.first_transport_error);
    assert_eq!(report.count(200) + report.count(503), 200, "{:?}", report.statuses);
    assert!(report.count(200) > 0, "{:?}", report.statuses);
}

/// Waits until `/metrics` shows `n` requests admitted and not yet answered.
fn wait_for_queue_depth(server: &Server, n: usize) {
    let started = Instant::now();
    while server.metric("oodscope_queue_depth") != Some(n as f64) {
        assert!(started.elapsed() < bound(30.0), "{n} requests were not admitted");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An infer request sent up to the middle of its body, on a raw connection: admitted by the
/// server, in flight until [`Held::finish`] sends the rest.
struct Held {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl Held {
    fn send_head(server: &Server, payload: &Payload) -> Held {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let mut head = format!(
            "POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n",
            payload.body.len()
        );
        if let Some(n) = payload.header_length {
            head += &format!("Inference-Header-Content-Length: {n}\r\n");
        }
        head += "\r\n";
        let half = payload.body.len() / 2;
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&payload.body[..half]).unwrap();
        stream.flush().unwrap();
        Held {
            stream,
            rest: payload.body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer.
    fn finish(mut self) -> loadgen::Answer {
        self.stream.write_all(&self.rest).unwrap();
        self.stream.set_read_timeout(Some(bound(60.0))).unwrap();
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw).unwrap();
        parse_answer(&raw)
    }
}

/// An HTTP/1.1 answer read to the connection's end (`Connection: close`).
fn parse_answer(raw: &[u8]) -> loadgen::Answer {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    loadgen::Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec().into(),
    }
}

/// Opens a connection and sends an infer request's head and the first `sent` bytes of a body of
/// `length`, then stalls.
fn partial_request(server: &Server, length: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b' '; sent]).unwrap();
    stream.flush().unwrap();
    stream
}

#[test]
fn slow_and_vanishing_clients_stall_nobody_and_break_nothing() {
    let server = Server::start(&["--deadline-ms", "8000"]);
    let files = demo_images(4, 4);
    let reference = checked(&files);
    let payload = binary_request(&read_all(&files));
    // Slow clients: bodies promised, a few bytes sent, then silence.
    let mut slow: Vec<TcpStream> = (0..4).map(|_| partial_request(&server, 100_000, 10)).collect();
    // Clients that leave: mid-body, right after the head, and after a whole request before its answer.
    drop(partial_request(&server, 100_000, 5_000));
    drop(partial_request(&server, 100_000, 0));
    {
        let mut whole = TcpStream::connect(server.addr).unwrap();
        let n = payload.header_length.unwrap();
        let head = format!(
            "POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: {n}\r\nContent-Length: {}\r\n\r\n",
            payload.body.len()
        );
        whole.write_all(head.as_bytes()).unwrap();
        whole.write_all(&payload.body).unwrap();
    }
    // The others are served while the slow ones still stall: none of those is answered yet (their
    // deadline has not come).
    for _ in 0..10 {
        assert_same(&outputs(&server.infer(&payload)), &reference);
    }
    for stream in &slow {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let read = (&*stream).read(&mut byte);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a slow client was answered before the others were served: {read:?}"
        );
        stream.set_nonblocking(false).unwrap();
    }
    // Each stalled body is answered 408 at its deadline.
    for stream in &mut slow {
        let mut answer = String::new();
        stream.set_read_timeout(Some(bound(60.0))).unwrap();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive before the deadline"), "{answer}");
    }
    slow.clear();
    assert_same(&outputs(&server.infer(&payload)), &reference);
    assert!(server.metric("oodscope_errors_total{kind=\"body_timeout\"}").unwrap() >= 4.0);
}

#[test]
fn sigterm_under_load_answers_every_accepted_request_and_exits_0() {
    let mut server = Server::start(&[]);
    let files = demo_images(3, 3);
    let reference = checked(&files);
    let payload = binary_request(&read_all(&files));
    // Accepted requests in flight: their bodies half sent.
    let held: Vec<Held> = (0..8).map(|_| Held::send_head(&server, &payload)).collect();
    wait_for_queue_depth(&server, 8);
    // And a load running when the signal comes.
    let load = spec(&server, vec![payload.clone()], 8, 100_000);
    let (report, answers) = std::thread::scope(|s| {
        let running = s.spawn(|| loadgen::run_load(&load).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        server.signal("TERM");
        server.wait_for_line("oodscope serve: SIGTERM: accepting no new connections");
        let answers: Vec<_> = held.into_iter().map(Held::finish).collect();
        (running.join().unwrap(), answers)
    });
    for answer in &answers {
        assert_same(&outputs(answer), &reference);
    }
    // The load's requests were all answered 200 until the server closed; after that the
    // generator's connections are refused (transport errors), never a request dropped mid-way.
    assert!(report.count(200) > 0, "{report:?}");
    assert_eq!(report.statuses.len(), 1, "{:?}", report.statuses);
    let (code, lines) = server.finish();
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "oodscope serve: every accepted request answered; stopped"),
        "{lines:?}"
    );
}

#[test]
fn a_client_that_never_sends_a_whole_head_does_not_hold_the_drain() {
    let server = Server::start(&["--deadline-ms", "1000"]);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .write_all(format!("POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .unwrap();
    // Served meanwhile.
    let files = demo_images(1, 0);
    assert_same(
        &outputs(&server.infer(&binary_request(&read_all(&files)))),
        &checked(&files),
    );
    server.signal("TERM");
    let (code, lines) = server.finish();
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("oodscope serve: connections still open 3 s after the signal")),
        "{lines:?}"
    );
    drop(stalled);
}
