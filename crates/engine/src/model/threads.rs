//! How many threads libtorch uses inside one operation, and how that follows a busy neighbour.
//!
//! libtorch's OpenMP pool splits every operation into equal parts, one per thread, and waits for
//! the last: when another process holds one of the cores, the thread that shares it runs a time
//! slice in two and every operation waits for it. On 2 cores, ODIN with two threads fell from
//! 2359 to 146 images/s beside one spinning process, while one thread kept 1247 (docs/benchmarks.md).
//! So by default (no `--threads`) the count follows the cores that are free: between batches, at
//! most every [`WINDOW`], the [`Governor`] reads how much CPU time the other processes took on this
//! process's CPUs (`/proc/stat` less `/proc/self/stat`) and sets the threads to the cores they left.
//! Quiet, that is all the cores, as before; reading two `/proc` files costs microseconds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tch::Device;

/// The shortest time over which the neighbours' CPU use is measured (the kernel counts in ticks of
/// 10 ms: 25 per core over this window).
pub const WINDOW: Duration = Duration::from_millis(250);

/// The default number of threads libtorch uses inside one operation (its intra-op pool), the most
/// the governor gives.
///
/// - On the CPU, all the cores: a run decodes and scores its batches in turn rather than side by
///   side (see `score::run`), so the model has the cores to itself while it works. On 2 cores ODIN
///   on the bundled ResNet ran at 910 images/s with two threads against 559 with one.
/// - On a GPU, one: the CPU only copies batches there, and an idle pool of busy-waiting threads
///   takes the cores from the decoders. On an H100 with 16 cores MSP at batch 64 ran at 47 000 to
///   52 000 images/s with one thread against 6 600 to 11 000 with sixteen.
pub fn default_model_threads(device: Device) -> usize {
    match device {
        Device::Cpu => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        _ => 1,
    }
}

/// The governor of this process, when the thread count follows the free cores (`None`: fixed).
static GOVERNOR: Mutex<Option<Governor>> = Mutex::new(None);

/// Sets libtorch's intra-op thread count (process-wide) for a model on `device`. `Some(n)`: `n`
/// threads throughout. `None`: [`default_model_threads`], and on the CPU fewer while other
/// processes take cores ([`adapt_model_threads`]).
pub fn set_model_threads(threads: Option<usize>, device: Device) {
    let fixed = threads.or((device != Device::Cpu).then_some(1));
    let most = fixed.unwrap_or_else(|| default_model_threads(device)).max(1);
    tch::set_num_threads(most as i32);
    let governor = match fixed {
        Some(_) => None,
        None => Governor::start(most),
    };
    *GOVERNOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = governor;
}

/// Between two batches, on the thread that runs the model: sets the thread count to the cores the
/// other processes left, when it follows them and a [`WINDOW`] has passed since the last look.
pub fn adapt_model_threads() {
    let mut governor = GOVERNOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(threads) = governor.as_mut().and_then(Governor::look) {
        tch::set_num_threads(threads as i32);
    }
}

/// The thread count for `free` cores (the cores of this process less the other processes' use,
/// fractional): the whole cores free, a core counting as free when at most 0.7 of it is taken, at
/// least one and at most `most`. Beside one spinning process on 2 cores, two threads leave it about
/// 0.7 of a core (three threads share two cores) and one thread a whole one: both give 1.
pub fn threads_for_free_cores(free: f64, most: usize) -> usize {
    ((free + 0.3).floor().max(1.0) as usize).min(most)
}

/// Follows the other processes' CPU use on this process's CPUs and says when the count changes.
pub struct Governor {
    most: usize,
    current: usize,
    cpus: Vec<usize>,
    last: Sample,
}

/// CPU time in clock ticks at one moment: all processes' on this process's CPUs, and this one's.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    busy: u64,
    own: u64,
}

impl Governor {
    /// A governor giving at most `most` threads; `None` where the CPU times cannot be read (not
    /// Linux, no `/proc`): the count then stays at `most`.
    fn start(most: usize) -> Option<Governor> {
        let cpus = usable_cpus()?;
        let last = sample(&cpus)?;
        Some(Governor {
            most,
            current: most,
            cpus,
            last,
        })
    }

    /// The new thread count, when it changes.
    fn look(&mut self) -> Option<usize> {
        if self.last.at.elapsed() < WINDOW {
            return None;
        }
        let now = sample(&self.cpus)?;
        let ticks = procfs::ticks_per_second() as f64;
        let seconds = (now.at - self.last.at).as_secs_f64();
        let others = (now.busy.saturating_sub(self.last.busy) as f64 - now.own.saturating_sub(self.last.own) as f64)
            .max(0.0)
            / ticks
            / seconds;
        self.last = now;
        let threads = threads_for_free_cores(self.cpus.len() as f64 - others, self.most);
        (threads != self.current).then(|| {
            self.current = threads;
            threads
        })
    }
}

/// The CPUs this process may run on (its affinity mask), as numbered in `/proc/stat`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn usable_cpus() -> Option<Vec<usize>> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect();
        (!cpus.is_empty()).then_some(cpus)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn usable_cpus() -> Option<Vec<usize>> {
    None
}

/// The ticks all processes spent on `cpus` (user, nice, system, interrupts, steal: not idle or
/// waiting for I/O) and those this process spent, now.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn sample(cpus: &[usize]) -> Option<Sample> {
    use procfs::CurrentSI;
    let at = Instant::now();
    let kernel = procfs::KernelStats::current().ok()?;
    let busy = cpus
        .iter()
        .filter_map(|&cpu| kernel.cpu_time.get(cpu))
        .map(|t| t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0))
        .sum();
    let me = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some(Sample {
        at,
        busy,
        own: me.utime + me.stime,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn sample(_cpus: &[usize]) -> Option<Sample> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_whole_free_cores_within_one_and_the_most() {
        assert_eq!(threads_for_free_cores(2.0, 2), 2);
        assert_eq!(threads_for_free_cores(1.95, 2), 2); // quiet but for a little noise
        assert_eq!(threads_for_free_cores(1.33, 2), 1); // beside one spinner, with two threads
        assert_eq!(threads_for_free_cores(1.0, 2), 1); // beside one spinner, with one thread
        assert_eq!(threads_for_free_cores(0.0, 2), 1);
        assert_eq!(threads_for_free_cores(-1.0, 2), 1);
        assert_eq!(threads_for_free_cores(15.06, 16), 15);
        assert_eq!(threads_for_free_cores(64.0, 16), 16);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_spinning_process_is_counted_among_the_others() {
        let cpus = usable_cpus().unwrap();
        // A neighbour on this process's CPUs (its affinity is inherited), spinning.
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let neighbour = procfs::process::Process::new(spinner.id() as i32).unwrap();
        let its_ticks = || neighbour.stat().map(|s| s.utime + s.stime).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (before, its_before) = (sample(&cpus).unwrap(), its_ticks());
        std::thread::sleep(Duration::from_millis(600));
        let (after, its_after) = (sample(&cpus).unwrap(), its_ticks());
        spinner.kill().unwrap();
        spinner.wait().unwrap();
        // Whatever else runs (the other tests of this binary, other processes), the others' time
        // holds the spinner's, within a tick or two of the moments the files were read.
        let others = (after.busy - before.busy) as i64 - (after.own - before.own) as i64;
        let spun = (its_after - its_before) as i64;
        assert!(spun > 10, "the spinner ran {spun} ticks in 0.6 s");
        assert!(
            others >= spun - 3,
            "others took {others} ticks, the spinner alone {spun}"
        );
        let seconds = (after.at - before.at).as_secs_f64();
        let ticks = procfs::ticks_per_second() as f64;
        let cores = others as f64 / ticks / seconds;
        assert!(
            cores <= cpus.len() as f64 + 0.2,
            "{cores:.2} cores taken of {}",
            cpus.len()
        );
    }
}
