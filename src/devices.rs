//! Devices: find the CUDA GPUs (count, name, memory), pick the ones a sweep may use, and fall
//! back to the CPU with one line saying why. The GPUs found are the ones this process's
//! `CUDA_VISIBLE_DEVICES` shows (under Slurm, the job's), numbered from 0 as the driver does.
//!
//! The CPU build loads libcuda at run time only to list GPUs (feature `gpu-discovery`); only
//! the CUDA build (`--features cuda`) can train on them.
use serde::{Deserialize, Serialize};

/// One CUDA GPU as the driver reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub index: usize,
    pub name: String,
    pub total_mib: u64,
    pub free_mib: Option<u64>,
}

impl Gpu {
    /// Busy: another process holds more than half of its memory.
    pub fn busy(&self) -> bool {
        self.free_mib.is_some_and(|free| free * 2 < self.total_mib)
    }
}

/// Where one worker trains.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    Cpu,
    Gpu(usize),
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Cpu => write!(f, "cpu"),
            Slot::Gpu(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// What discovery found, and why GPUs cannot be used if so.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery {
    pub gpus: Vec<Gpu>,
    /// Set when no GPU can train in this process: no driver, no GPU, or a CPU-only build.
    pub cpu_reason: Option<String>,
    /// GPUs reported by a fake backend (tests only): they run only the fake trainer.
    pub fake: bool,
}

/// Test seam: `n` fake GPUs of 16 GiB (the hidden `--fake-gpus N` flag; they train only the
/// fake trainer's runs).
pub fn fake(n: usize) -> Discovery {
    let gpus = (0..n)
        .map(|i| Gpu {
            index: i,
            name: format!("Fake GPU {i}"),
            total_mib: 16_384,
            free_mib: Some(16_000),
        })
        .collect();
    Discovery {
        gpus,
        cpu_reason: None,
        fake: true,
    }
}

/// The machine's GPUs, and why none can train if so.
pub fn discover() -> Discovery {
    match probe() {
        Err(reason) => Discovery {
            gpus: Vec::new(),
            cpu_reason: Some(reason),
            fake: false,
        },
        Ok(gpus) if gpus.is_empty() => Discovery {
            gpus,
            cpu_reason: Some("the CUDA driver reports no GPU".into()),
            fake: false,
        },
        Ok(gpus) => {
            let cpu_reason = (!cfg!(feature = "cuda")).then(|| {
                format!(
                    "this build has no CUDA support (found {} GPU{}); rebuild with `--no-default-features --features cuda` to train on them",
                    gpus.len(),
                    if gpus.len() == 1 { "" } else { "s" }
                )
            });
            Discovery {
                gpus,
                cpu_reason,
                fake: false,
            }
        }
    }
}

/// The `CUDA_VISIBLE_DEVICES` that pins a worker to GPU `index` as this process sees it.
/// The driver numbers only the GPUs this process's own `CUDA_VISIBLE_DEVICES` shows (Slurm
/// sets it to the job's GPUs: `2,3` makes physical GPU 2 our GPU 0), so the worker gets that
/// list's entry at `index` (an index or a `GPU-...` UUID), not `index` itself.
pub fn pin(index: usize, visible: Option<&str>) -> String {
    visible
        .and_then(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .nth(index)
        })
        .map(str::to_string)
        .unwrap_or_else(|| index.to_string())
}

/// The user's `--devices` choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Every free GPU, else the CPU.
    Auto,
    Cpu,
    Gpus(Vec<usize>),
}

impl std::str::FromStr for Request {
    type Err = String;
    fn from_str(s: &str) -> Result<Request, String> {
        match s.trim() {
            "" | "auto" => Ok(Request::Auto),
            "cpu" => Ok(Request::Cpu),
            list => list
                .split(',')
                .map(|p| p.trim().trim_start_matches("cuda:").parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map(Request::Gpus)
                .map_err(|_| {
                    format!(
                        "`{s}` is not a device list: use `cpu`, `auto` or GPU indices like `0,2`"
                    )
                }),
        }
    }
}

/// How many runs train at once on one device (`--runs-per-device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsPerDevice {
    /// One on the CPU; on a GPU one per [`MIB_PER_RUN`] of its free memory, at most
    /// [`MAX_AUTO_RUNS`], and no more workers in all than CPU cores (each worker's loader
    /// needs one).
    Auto,
    Fixed(usize),
}

/// GPU memory `auto` sets aside per run: above the peak of the heaviest configuration
/// measured (resnet50 at 224x224, batch 64, fp32: about 12 GiB with the CUDA context).
pub const MIB_PER_RUN: u64 = 16 * 1024;

/// Most runs `auto` puts on one GPU: small runs (the 16 of sweeps/lr_batch.toml on an
/// H100) finish sooner 4 at a time than 1 at a time, and more only adds contention.
pub const MAX_AUTO_RUNS: usize = 4;

/// Most runs `--runs-per-device N` may put on one device: each is a worker process.
pub const MAX_RUNS_PER_DEVICE: usize = 64;

impl std::str::FromStr for RunsPerDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<RunsPerDevice, String> {
        match s.trim() {
            "auto" => Ok(RunsPerDevice::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_RUNS_PER_DEVICE).contains(&n) => Ok(RunsPerDevice::Fixed(n)),
                Ok(0) => Err(format!(
                    "`{s}`: a device must train at least 1 run at once; use `auto` or a whole number from 1 to {MAX_RUNS_PER_DEVICE}"
                )),
                Ok(_) => Err(format!(
                    "`{s}` runs at once on one device is more than {MAX_RUNS_PER_DEVICE} (each run is a worker process); use `auto` or a whole number from 1 to {MAX_RUNS_PER_DEVICE}"
                )),
                Err(_) => Err(format!(
                    "`{s}` is not a number of runs: use `auto` or a whole number from 1 to {MAX_RUNS_PER_DEVICE}"
                )),
            },
        }
    }
}

impl RunsPerDevice {
    /// Runs for `slot`, which `gpus` slots share with `cores` CPU cores.
    fn for_slot(self, slot: &Slot, found: &Discovery, gpus: usize, cores: usize) -> usize {
        match (self, slot) {
            (RunsPerDevice::Fixed(n), _) => n.max(1),
            (RunsPerDevice::Auto, Slot::Cpu) => 1,
            (RunsPerDevice::Auto, Slot::Gpu(i)) => {
                let free = found
                    .gpus
                    .iter()
                    .find(|g| g.index == *i)
                    .and_then(|g| g.free_mib)
                    .unwrap_or(0);
                let by_memory = (free / MIB_PER_RUN) as usize;
                let by_cores = cores / gpus.max(1);
                by_memory.min(by_cores).clamp(1, MAX_AUTO_RUNS)
            }
        }
    }
}

/// The slots to run workers on, as many workers each as `per_device` says, and a note when
/// the CPU is used although GPUs were asked for or found.
pub fn choose(
    found: &Discovery,
    request: &Request,
    per_device: RunsPerDevice,
) -> Result<(Vec<Slot>, Option<String>), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    choose_with_cores(found, request, per_device, cores)
}

fn choose_with_cores(
    found: &Discovery,
    request: &Request,
    per_device: RunsPerDevice,
    cores: usize,
) -> Result<(Vec<Slot>, Option<String>), String> {
    let repeat = |slots: Vec<Slot>| -> Vec<Slot> {
        let gpus = slots.iter().filter(|s| matches!(s, Slot::Gpu(_))).count();
        slots
            .into_iter()
            .flat_map(|s| {
                let n = per_device.for_slot(&s, found, gpus, cores);
                std::iter::repeat_n(s, n)
            })
            .collect()
    };
    match request {
        Request::Cpu => Ok((repeat(vec![Slot::Cpu]), None)),
        Request::Gpus(wanted) => {
            if let Some(reason) = &found.cpu_reason {
                return Err(format!(
                    "--devices names GPUs but none can be used: {reason}"
                ));
            }
            for w in wanted {
                if !found.gpus.iter().any(|g| g.index == *w) {
                    let have: Vec<String> =
                        found.gpus.iter().map(|g| g.index.to_string()).collect();
                    return Err(format!(
                        "GPU {w} does not exist; found: {}",
                        have.join(", ")
                    ));
                }
            }
            let mut unique = wanted.clone();
            unique.dedup();
            Ok((repeat(unique.into_iter().map(Slot::Gpu).collect()), None))
        }
        Request::Auto => {
            if let Some(reason) = &found.cpu_reason {
                return Ok((
                    repeat(vec![Slot::Cpu]),
                    Some(format!("training on the CPU: {reason}")),
                ));
            }
            let free: Vec<Slot> = found
                .gpus
                .iter()
                .filter(|g| !g.busy())
                .map(|g| Slot::Gpu(g.index))
                .collect();
            if free.is_empty() {
                return Ok((repeat(vec![Slot::Cpu]), Some("training on the CPU: every GPU is busy (over half its memory in use); name them with --devices to use them anyway".into())));
            }
            Ok((repeat(free), None))
        }
    }
}

#[cfg(feature = "cuda")]
use candle_core::cuda_backend::cudarc;

#[cfg(any(feature = "cuda", feature = "gpu-discovery"))]
fn probe() -> Result<Vec<Gpu>, String> {
    use cudarc::driver::{result, CudaContext};
    #[cfg(not(feature = "cuda"))]
    // SAFETY: only tries to open the driver library by its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver (libcuda.so not found)".into());
    }
    result::init().map_err(|e| format!("the CUDA driver did not start: {e}"))?;
    let count = result::device::get_count().map_err(|e| format!("cannot count GPUs: {e}"))?;
    let mut gpus = Vec::new();
    for i in 0..count.max(0) as usize {
        let dev = result::device::get(i as i32).map_err(|e| format!("GPU {i}: {e}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
        // SAFETY: `dev` was returned by cuDeviceGet above.
        let total = unsafe { result::device::total_mem(dev) }.unwrap_or(0) as u64;
        let free = CudaContext::new(i)
            .ok()
            .and_then(|ctx| ctx.mem_get_info().ok())
            .map(|(f, _)| f as u64 >> 20);
        gpus.push(Gpu {
            index: i,
            name,
            total_mib: total >> 20,
            free_mib: free,
        });
    }
    Ok(gpus)
}

#[cfg(not(any(feature = "cuda", feature = "gpu-discovery")))]
fn probe() -> Result<Vec<Gpu>, String> {
    Err("this build has neither CUDA support nor GPU discovery".into())
}

#[cfg(all(feature = "cuda", feature = "gpu-discovery"))]
compile_error!("build the CUDA binary with `--no-default-features --features cuda`: candle links libcuda directly, which cannot be combined with the CPU build's run-time loading (feature gpu-discovery)");

#[cfg(test)]
mod tests {
    use super::*;

    fn found(n: usize, reason: Option<&str>) -> Discovery {
        let gpus = (0..n)
            .map(|i| Gpu {
                index: i,
                name: "g".into(),
                total_mib: 1000,
                free_mib: Some(if i == 1 { 100 } else { 900 }),
            })
            .collect();
        Discovery {
            gpus,
            cpu_reason: reason.map(String::from),
            fake: false,
        }
    }

    #[test]
    fn workers_are_pinned_to_the_gpus_this_process_was_given() {
        assert_eq!(pin(0, None), "0");
        assert_eq!(pin(1, None), "1");
        // Slurm gave GPUs 2 and 3: our GPU 1 is physical GPU 3.
        assert_eq!(pin(0, Some("2,3")), "2");
        assert_eq!(pin(1, Some("2, 3")), "3");
        assert_eq!(pin(0, Some("GPU-8f1c")), "GPU-8f1c");
        // A list shorter than the GPUs found (it cannot be, but): the index.
        assert_eq!(pin(2, Some("5")), "2");
        assert_eq!(pin(0, Some("")), "0");
    }

    #[test]
    fn parses_device_lists() {
        assert_eq!("cpu".parse::<Request>(), Ok(Request::Cpu));
        assert_eq!("auto".parse::<Request>(), Ok(Request::Auto));
        assert_eq!("0, 2".parse::<Request>(), Ok(Request::Gpus(vec![0, 2])));
        assert_eq!("cuda:1".parse::<Request>(), Ok(Request::Gpus(vec![1])));
        assert!("gpu0"
            .parse::<Request>()
            .unwrap_err()
            .contains("`cpu`, `auto`"));
    }

    #[test]
    fn auto_uses_free_gpus_else_cpu_with_a_reason() {
        assert_eq!(
            choose(&found(3, None), &Request::Auto, RunsPerDevice::Fixed(1)).unwrap(),
            (vec![Slot::Gpu(0), Slot::Gpu(2)], None)
        );
        assert_eq!(
            choose(&found(2, None), &Request::Auto, RunsPerDevice::Fixed(2))
                .unwrap()
                .0,
            [Slot::Gpu(0), Slot::Gpu(0)]
        );
        let (slots, note) = choose(
            &found(0, Some("no CUDA driver")),
            &Request::Auto,
            RunsPerDevice::Auto,
        )
        .unwrap();
        assert_eq!(slots, [Slot::Cpu]);
        assert!(note.unwrap().contains("no CUDA driver"));
    }

    #[test]
    fn auto_runs_per_device_follow_free_memory_and_cores() {
        let gpu = |index, free_gib: u64| Gpu {
            index,
            name: "g".into(),
            total_mib: 81_559,
            free_mib: Some(free_gib << 10),
        };
        let found = Discovery {
            gpus: vec![gpu(0, 79), gpu(1, 20), gpu(2, 50)],
            cpu_reason: None,
            fake: false,
        };
        let auto = |request: &Request, cores| {
            choose_with_cores(&found, request, RunsPerDevice::Auto, cores)
                .unwrap()
                .0
        };
        let count = |slots: &[Slot], i| slots.iter().filter(|s| **s == Slot::Gpu(i)).count();
        // 79 GiB free: 4 runs (the cap); 20 GiB: 1; 50 GiB: 3 (16 GiB each).
        let slots = auto(&Request::Gpus(vec![0, 1, 2]), 64);
        assert_eq!(
            (count(&slots, 0), count(&slots, 1), count(&slots, 2)),
            (4, 1, 3)
        );
        // Two cores for three GPUs: one run each, never zero.
        let slots = auto(&Request::Gpus(vec![0, 1, 2]), 2);
        assert_eq!(
            (count(&slots, 0), count(&slots, 1), count(&slots, 2)),
            (1, 1, 1)
        );
        // Six cores for one GPU: the memory's 4.
        assert_eq!(auto(&Request::Gpus(vec![0]), 6).len(), 4);
        assert_eq!(auto(&Request::Cpu, 64), [Slot::Cpu]);
        assert_eq!("auto".parse(), Ok(RunsPerDevice::Auto));
        assert_eq!("3".parse(), Ok(RunsPerDevice::Fixed(3)));
        assert!("0".parse::<RunsPerDevice>().unwrap_err().contains("`auto`"));
    }

    #[test]
    fn runs_per_device_must_be_auto_or_1_to_the_maximum() {
        assert_eq!(" auto ".parse(), Ok(RunsPerDevice::Auto));
        assert_eq!("64".parse(), Ok(RunsPerDevice::Fixed(64)));
        let e = "0".parse::<RunsPerDevice>().unwrap_err();
        assert!(e.contains("at least 1 run"), "{e}");
        // Too many: not an allocation of a hundred billion slots.
        for n in ["65", "99999999999", "18446744073709551616"] {
            let e = n.parse::<RunsPerDevice>().unwrap_err();
            assert!(e.contains("from 1 to 64"), "{n}: {e}");
        }
        for n in ["", "-1", "1.5", "two", "0x4"] {
            let e = n.parse::<RunsPerDevice>().unwrap_err();
            assert!(e.contains("not a number of runs"), "{n:?}: {e}");
        }
    }

    #[test]
    fn explicit_gpus_must_exist_and_be_usable() {
        assert_eq!(
            choose(
                &found(3, None),
                &Request::Gpus(vec![1]),
                RunsPerDevice::Fixed(1)
            )
            .unwrap()
            .0,
            [Slot::Gpu(1)]
        );
        assert!(choose(
            &found(2, None),
            &Request::Gpus(vec![5]),
            RunsPerDevice::Fixed(1)
        )
        .unwrap_err()
        .contains("GPU 5 does not exist"));
        assert!(choose(
            &found(2, Some("no CUDA")),
            &Request::Gpus(vec![0]),
            RunsPerDevice::Auto
        )
        .unwrap_err()
        .contains("no CUDA"));
        assert_eq!(
            choose(&found(2, None), &Request::Cpu, RunsPerDevice::Fixed(3))
                .unwrap()
                .0,
            [Slot::Cpu, Slot::Cpu, Slot::Cpu]
        );
    }
}
