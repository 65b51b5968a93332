//! Watching a running `oodscope serve`: a thread of its own polls the server's watch endpoints
//! once a second with a small blocking HTTP client (ureq: plain HTTP, no async runtime in the
//! window) and sends each answer, or why there is none, to the window as plain structs; flagged
//! images arrive decoded into thumbnails. A server that is down or answers something else is one
//! line, and the next poll tries again. The thread stops when the [`Poller`] is dropped.

pub mod contract;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::worker::Waker;
use contract::{FlaggedAnswer, WatchAnswer};

/// How often the server is asked.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long one request may take before the server counts as not answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (the flagged list carries images).
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;
/// A thumbnail's longer side, in pixels.
const THUMBNAIL: u32 = 128;

/// A flagged input with its image decoded for display.
#[derive(Debug, Clone)]
pub struct FlaggedInput {
    pub answer: FlaggedAnswer,
    /// The thumbnail, or why the bytes are not an image.
    pub image: Result<Arc<egui::ColorImage>, String>,
}

/// What one poll gave.
#[derive(Debug, Clone)]
pub enum Poll {
    Answer {
        watch: Box<WatchAnswer>,
        /// Newest first; `Err`: the watch answered but the flagged list did not.
        flagged: Result<Vec<FlaggedInput>, String>,
    },
    /// Why the server gave no usable answer (one line).
    Down(String),
}

/// The polling thread's handle: its answers, and the flag that stops it.
pub struct Poller {
    pub url: String,
    pub answers: Receiver<Poll>,
    stop: Arc<AtomicBool>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        // The thread sees it within a tenth of a second, or after its request's timeout; it is not
        // joined, so that the window never waits on a server.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `http://HOST:PORT` from what the user typed (`HOST:PORT` gets `http://`; a trailing `/` goes).
pub fn normalise_url(typed: &str) -> Result<String, String> {
    let url = typed.trim().trim_end_matches('/');
    if url.is_empty() {
        return Err("give the server's address, such as http://127.0.0.1:8080".into());
    }
    if url.starts_with("https://") {
        return Err(format!(
            "{url}: the watch speaks plain HTTP (oodscope serve's); use http://"
        ));
    }
    Ok(match url.starts_with("http://") {
        true => url.to_string(),
        false => format!("http://{url}"),
    })
}

impl Poller {
    /// Starts polling `url` (already normalised); `waker` wakes the window after each answer.
    pub fn start(url: String, waker: Waker) -> Result<Poller, String> {
        let (tx, answers) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread_url = url.clone();
        std::thread::Builder::new()
            .name("oodscope-watch".into())
            .spawn(move || poll_loop(&thread_url, &tx, &thread_stop, &waker))
            .map_err(|e| format!("cannot start watching {url}: {e}"))?;
        Ok(Poller { url, answers, stop })
    }
}

fn poll_loop(url: &str, tx: &Sender<Poll>, stop: &AtomicBool, waker: &Waker) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut thumbnails: HashMap<u64, Result<Arc<egui::ColorImage>, String>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let poll = poll_once(&agent, url, &mut thumbnails);
        if stop.load(Ordering::Relaxed) || tx.send(poll).is_err() {
            return;
        }
        waker();
        while started.elapsed() < POLL_EVERY {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One poll: the watch answer, then the flagged list (images decoded once per `seq`).
fn poll_once(
    agent: &ureq::Agent,
    url: &str,
    thumbnails: &mut HashMap<u64, Result<Arc<egui::ColorImage>, String>>,
) -> Poll {
    let watch: WatchAnswer = match get_json(agent, &format!("{url}/oodscope/v1/watch")) {
        Ok(w) => w,
        Err(why) => return Poll::Down(why),
    };
    let flagged = get_json::<Vec<FlaggedAnswer>>(agent, &format!("{url}/oodscope/v1/flagged")).map(|list| {
        thumbnails.retain(|seq, _| list.iter().any(|f| f.seq == *seq));
        list.into_iter()
            .map(|answer| {
                let image = thumbnails
                    .entry(answer.seq)
                    .or_insert_with(|| thumbnail(&answer.image_b64).map(Arc::new))
                    .clone();
                FlaggedInput { answer, image }
            })
            .collect()
    });
    Poll::Answer {
        watch: Box::new(watch),
        flagged,
    }
}

/// GETs `address` and reads its JSON; every failure is one line naming the address.
fn get_json<T: serde::de::DeserializeOwned>(agent: &ureq::Agent, address: &str) -> Result<T, String> {
    let mut response = agent
        .get(address)
        .call()
        .map_err(|e| format!("cannot reach {address}: {}", describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "{address} answered HTTP {}: is it an oodscope serve?",
            status.as_u16()
        ));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| format!("cannot read the answer of {address}: {}", describe(&e)))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{address} answered something other than oodscope serve's JSON: {e}"))
}

/// A client error in a few words ("connection refused", "no answer within 3 s", …).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            _ => io.to_string(),
        },
        ureq::Error::Timeout(_) => format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}

/// A flagged input's bytes decoded into a thumbnail (the `image` crate), or why they are not an image.
fn thumbnail(image_b64: &str) -> Result<egui::ColorImage, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image_b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let image = image::load_from_memory(&bytes).map_err(|e| format!("not an image: {e}"))?;
    let small = image.thumbnail(THUMBNAIL, THUMBNAIL).to_rgba8();
    let size = [small.width() as usize, small.height() as usize];
    Ok(egui::ColorImage::from_rgba_unmultiplied(size, small.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_addresses_are_normalised_or_refused() {
        assert_eq!(normalise_url(" 127.0.0.1:8080/ ").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalise_url("http://h:1").unwrap(), "http://h:1");
        assert!(normalise_url("https://h:1").unwrap_err().contains("plain HTTP"));
        assert!(normalise_url("  ").is_err());
    }

    #[test]
    fn bytes_that_are_not_an_image_say_so() {
        assert!(thumbnail("aGVsbG8=").unwrap_err().contains("not an image"));
        assert!(thumbnail("%%").unwrap_err().contains("not base64"));
    }
}
