//! Starting and stopping the server: the model thread (it loads the detector and owns it), the
//! tokio runtime, the listener and its ready line, and the graceful shutdown on SIGTERM or SIGINT:
//! no new connections, every accepted request answered, then the model thread ends and `serve`
//! returns (a second signal ends the process at once, 128 + its number).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, oneshot};

use crate::config::ServeOptions;
use crate::detector::{self, DetectorInfo};
use crate::error::ServeError;
use crate::flagged::Flagged;
use crate::model_thread::{self, Batching, Job};
use crate::monitor::Monitor;
use crate::routes::{AppState, router};

/// Serves the detector until SIGTERM or SIGINT, then drains and returns `Ok`.
pub fn serve(options: ServeOptions) -> Result<(), ServeError> {
    options.check()?;
    let addr = socket_address(&options.host, options.port)?;
    let (jobs, receiver) = mpsc::channel::<Job>();
    let admission = Arc::new(Semaphore::new(options.max_queue));
    let (info, monitor, model) = start_model_thread(&options, receiver, admission.clone())?;
    let state = AppState {
        info: Arc::new(info),
        max_queue: options.max_queue,
        max_body_bytes: options.max_body_bytes,
        deadline: options.deadline,
        admission,
        jobs,
        monitor,
        flagged: Arc::new(Mutex::new(Flagged::new(options.keep_flagged))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()?;
    let served = runtime.block_on(run(state, addr, &options));
    // Every accepted request is answered. Dropping the runtime drops what is left of the
    // connections (only ones that never sent a whole request head remain after a drain cut short)
    // and with them the last senders of jobs: the model thread then ends.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let joined = model.join();
    served?;
    joined.map_err(|_| ServeError::ModelThread("panicked".into()))
}

/// The address to listen on: an IP address (`127.0.0.1`, `::`, `[::1]`) or a host name such as
/// `localhost` (its first address).
fn socket_address(host: &str, port: u16) -> Result<SocketAddr, ServeError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let refuse = |reason: String| ServeError::Host {
        host: host.to_string(),
        reason,
    };
    (bare, port)
        .to_socket_addrs()
        .map_err(|e| refuse(e.to_string()))?
        .next()
        .ok_or_else(|| refuse("it resolves to no address".into()))
}

/// Starts the thread that loads the detector and serves jobs; returns once the detector is loaded.
fn start_model_thread(
    options: &ServeOptions,
    jobs: mpsc::Receiver<Job>,
    admission: Arc<Semaphore>,
) -> Result<(DetectorInfo, Arc<Monitor>, JoinHandle<()>), ServeError> {
    let max_queue = options.max_queue;
    let admitted = move || max_queue.saturating_sub(admission.available_permits());
    let (loaded_send, loaded) = mpsc::channel();
    let (monitor_send, monitor_receive) = mpsc::channel::<Arc<Monitor>>();
    let path = options.detector.clone();
    let device = options.device;
    let batching = Batching {
        max_batch: options.max_batch,
        max_delay: options.max_delay,
    };
    let handle = std::thread::Builder::new()
        .name("model".into())
        .spawn(move || {
            let mut detector = match detector::load(&path, device) {
                Ok((detector, info)) => {
                    let _ = loaded_send.send(Ok(info));
                    detector
                }
                Err(e) => {
                    let _ = loaded_send.send(Err(e));
                    return;
                }
            };
            if let Ok(monitor) = monitor_receive.recv() {
                model_thread::run(&jobs, &mut detector, batching, &monitor, &admitted);
            }
        })
        .map_err(|e| ServeError::ModelThread(format!("cannot start: {e}")))?;
    match loaded.recv() {
        Ok(Ok(info)) => {
            let monitor = Arc::new(Monitor::new(info.calibration_scores.clone(), info.false_alarm));
            monitor_send
                .send(monitor.clone())
                .map_err(|_| ServeError::ModelThread("ended after loading the detector".into()))?;
            Ok((info, monitor, handle))
        }
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(ServeError::Detector(e))
        }
        Err(_) => {
            let _ = handle.join();
            Err(ServeError::ModelThread("ended while loading the detector".into()))
        }
    }
}

async fn run(state: AppState, addr: SocketAddr, options: &ServeOptions) -> Result<(), ServeError> {
    // Listening for the signals before the ready line: a signal sent on seeing it is never lost.
    let terminate = signal(SignalKind::terminate())?;
    let interrupt = signal(SignalKind::interrupt())?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind { addr, error })?;
    let bound = listener.local_addr()?;
    let host = match bound.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    eprintln!(
        "oodscope serve: {} on http://{host}:{} (method {}, device {}, max batch {}, max delay {} ms, max queue {}, deadline {} ms)",
        state.info.name,
        bound.port(),
        state.info.method,
        state.info.device,
        options.max_batch,
        options.max_delay.as_millis(),
        options.max_queue,
        options.deadline.as_millis(),
    );
    let (signalled, on_signal) = oneshot::channel::<()>();
    // Answers go out as soon as they are written (no Nagle delay on small responses).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        first_signal(terminate, interrupt).await;
        let _ = signalled.send(());
    });
    // Every request accepted before the signal is answered within its deadline; a connection still
    // open after that holds no accepted request (a client that never sent a whole request head),
    // and must not hold the drain forever.
    let drain_bound = options.deadline + DRAIN_MARGIN;
    tokio::select! {
        served = server.into_future() => served?,
        () = async {
            if on_signal.await.is_ok() {
                tokio::time::sleep(drain_bound).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => eprintln!(
            "oodscope serve: connections still open {} s after the signal hold no accepted request: closing them",
            drain_bound.as_secs()
        ),
    }
    eprintln!("oodscope serve: every accepted request answered; stopped");
    Ok(())
}

/// Beyond the deadline, how long a drain waits for the last answers to be written.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// Resolves on the first SIGTERM or SIGINT, saying so; a second one ends the process at once.
async fn first_signal(mut terminate: Signal, mut interrupt: Signal) {
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    eprintln!(
        "oodscope serve: {name}: accepting no new connections, answering the accepted requests (a second signal stops at once)"
    );
    tokio::spawn(async move {
        let second = tokio::select! {
            _ = terminate.recv() => 143,
            _ = interrupt.recv() => 130,
        };
        eprintln!("oodscope serve: a second signal: stopping now");
        std::process::exit(second);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_are_ip_addresses_and_other_text_is_refused_with_the_flag() {
        assert_eq!(
            super::socket_address("127.0.0.1", 80).unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(super::socket_address("[::1]", 80).unwrap().to_string(), "[::1]:80");
        assert!(super::socket_address("localhost", 80).unwrap().ip().is_loopback());
        let err = super::socket_address("no such host!", 80).unwrap_err().to_string();
        assert!(err.starts_with("--host no such host!: not an address"), "{err}");
    }
}
