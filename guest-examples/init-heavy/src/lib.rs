//! `init-heavy`: the init hook fills a 4 MiB table with values that take tens
//! of milliseconds to compute. Pre-initialized, every request starts with the
//! table already built; on a host without pre-initialization the first
//! request pays for it. `?key=N` looks one entry up.
//!
//! The body also reports how often init ran in this instance: always `1`
//! (from the snapshot or lazily), never `0` or `2`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use wisp_sdk::{Request, Response, http_handler};

const ENTRIES: usize = 1 << 19; // 512 Ki u64 = 4 MiB
const ROUNDS: u32 = 24;

static INIT_RUNS: AtomicU32 = AtomicU32::new(0);
static TABLE: LazyLock<Vec<u64>> = LazyLock::new(|| (0..ENTRIES as u64).map(expensive).collect());

/// Stands in for real init work (parsing a model, compiling patterns):
/// `ROUNDS` rounds of the splitmix64 finalizer per entry.
fn expensive(seed: u64) -> u64 {
    (0..ROUNDS).fold(seed, |mut z, _| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn init() {
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
    LazyLock::force(&TABLE);
}

#[http_handler(init = init)]
fn handle(req: Request) -> Response {
    let key = match req.query_param("key").map(|k| k.parse::<usize>()) {
        None => 0,
        Some(Ok(key)) if key < ENTRIES => key,
        Some(_) => {
            return Response::text(format!("?key= must be a number below {ENTRIES}\n")).with_status(400);
        }
    };
    let runs = INIT_RUNS.load(Ordering::SeqCst);
    Response::text(format!("key={key} value={:016x} init_runs={runs}\n", TABLE[key]))
}
