//! Running a set of worker fragments and collecting their answers: all started at once, or
//! through a tree when there are more than one invocation should start itself; as many at a
//! time as the function's concurrency admits ([`super::window`]); transient failures invoked
//! again, stragglers duplicated, a partial result too large for Lambda's
//! response split, and the first permanent failure returned at once (the others are not
//! waited for).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep};
use futures::future::{BoxFuture, Either};
use futures::{FutureExt, StreamExt};
use serde_json::Value;

use super::invoke::{Invoker, Unanswered};
use super::partial;
use super::window::{Refusal, Window};
use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::{FanOut, Fragment};

/// Cuts a job in two.
pub type Halves = Arc<dyn Fn() -> Result<(Job, Job)> + Send + Sync>;

/// One invocation's work: a leaf fragment, or an inner node's children.
#[derive(Clone)]
pub struct Job {
    pub fragment: Fragment,
    /// For messages: the files it reads (the first few).
    pub label: String,
    /// How to cut it in two when its answer is too large; `None`: it cannot be.
    pub halves: Option<Halves>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("label", &self.label)
            .field("leaves", &leaves(&self.fragment).len())
            .finish()
    }
}

/// What the workers did, summed.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// Every answer's batches, in job order.
    pub batches: Vec<RecordBatch>,
    pub workers: u64,
    /// Lambda invocations made, at every level.
    pub invocations: u64,
    pub retried: u64,
    pub speculated: u64,
    pub s3_requests: u64,
    pub bytes_read: u64,
    pub sts_calls: u64,
    /// A `COPY INTO`'s workers: the bytes they sent, the files they created and their
    /// write requests.
    pub bytes_written: u64,
    pub files_written: u64,
    pub put_requests: u64,
}

impl Gathered {
    /// The coordinator's `stats` with the workers' added: the path is `fan_out`.
    pub fn add_to(&self, stats: &mut crate::result::Stats) {
        stats.path = crate::result::QueryPath::FanOut;
        stats.s3_requests += self.s3_requests;
        stats.bytes_read += self.bytes_read;
        stats.sts_calls += self.sts_calls;
        stats.workers = Some(self.workers);
        stats.invocations = Some(self.invocations);
        stats.tasks_retried = Some(self.retried);
        stats.tasks_speculated = Some(self.speculated);
    }

    fn add(&mut self, other: Gathered) {
        self.batches.extend(other.batches);
        self.workers += other.workers;
        self.invocations += other.invocations;
        self.retried += other.retried;
        self.speculated += other.speculated;
        self.s3_requests += other.s3_requests;
        self.bytes_read += other.bytes_read;
        self.sts_calls += other.sts_calls;
        self.bytes_written += other.bytes_written;
        self.files_written += other.files_written;
        self.put_requests += other.put_requests;
    }
}

/// How jobs run.
#[derive(Clone)]
pub struct Runner {
    pub invoker: Invoker,
    pub options: FanOut,
    pub sleep: SharedAsyncSleep,
    /// The worker event without its fragment: connection, stage, query, options.
    pub event: Value,
    /// Finished jobs' times, for the straggler threshold.
    times: Arc<Mutex<Vec<Duration>>>,
    /// How many invocations may run at once, as Lambda's throttling shows.
    window: Arc<Window>,
    /// Whether a failure waits for every other job to end before it is returned (writers:
    /// what they create must be known before the statement cleans up).
    settle: bool,
    /// The most bytes the answers held here may take: the query's memory pool.
    memory: usize,
}

impl Runner {
    pub fn new(invoker: Invoker, options: FanOut, sleep: SharedAsyncSleep, event: Value) -> Self {
        Self {
            invoker,
            options,
            sleep,
            event,
            times: Arc::default(),
            window: Arc::new(Window::new(usize::MAX)),
            settle: false,
            memory: crate::memory_limit(),
        }
    }

    /// The same runner, returning a failure only once every job has ended.
    pub fn settling(mut self) -> Self {
        self.settle = true;
        self
    }

    /// Runs `jobs`, starting at most `options.direct_invokes` invocations itself: above that,
    /// the leaves go to inner nodes that each start their share.
    pub async fn gather(&self, jobs: Vec<Job>) -> Result<Gathered> {
        let jobs = tree(jobs, self.options.direct_invokes as usize);
        let count = jobs.len();
        let mut answers: Vec<Option<Gathered>> = vec![None; count];
        let mut running = futures::stream::iter(jobs.into_iter().enumerate())
            .map(|(i, job)| self.run(job).map(move |r| (i, r)))
            .buffer_unordered(count.max(1));
        let mut failed = None;
        let mut held = 0usize;
        while let Some((i, answer)) = running.next().await {
            match answer {
                Ok(answer) => {
                    held = hold(held, &answer, self.memory)?;
                    answers[i] = Some(answer);
                }
                Err(e) if self.settle => {
                    failed.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let mut all = Gathered::default();
        for answer in answers.into_iter().flatten() {
            all.add(answer);
        }
        Ok(all)
    }

    /// One job to its answer: retried while transient, split while too large.
    fn run(&self, job: Job) -> BoxFuture<'_, Result<Gathered>> {
        async move {
            let mut retried = 0;
            let mut attempt = 1;
            loop {
                let e = match self.race(&job, attempt).await {
                    Ok(mut answer) => {
                        answer.retried += retried;
                        return Ok(answer);
                    }
                    // Lambda had no slot for it while others of the query run: it waits for
                    // room in the window, which costs no attempt.
                    Err(Miss::Refused(Refusal::Wait, _)) => {
                        retried += 1;
                        continue;
                    }
                    Err(Miss::Refused(Refusal::Probe, e)) if attempt >= self.options.max_attempts => {
                        return Err(FunctionError::new(
                            ErrorKind::Throttled,
                            format!(
                                "a fan-out worker reading {} could not start after {attempt} \
                                 attempts: the function's concurrency is taken, and none of this \
                                 query's workers runs to free it. Raise the function's \
                                 ReservedConcurrentExecutions above options.fan_out.max_workers, or \
                                 lower max_workers (1 turns fan-out off): {}",
                                job.label,
                                e.message()
                            ),
                        ));
                    }
                    Err(Miss::Refused(Refusal::Probe, _)) => {
                        retried += 1;
                        attempt += 1;
                        continue;
                    }
                    Err(Miss::Failed(e)) => e,
                };
                match e {
                    e if e.kind() == ErrorKind::ResultTooLarge => {
                        let Some(halves) = &job.halves else {
                            return Err(FunctionError::new(
                                ErrorKind::ResultTooLarge,
                                format!(
                                    "the fan-out worker for {} returned more than Lambda's 6 MB response \
                                     can carry, and its share cannot be split further (one row group): \
                                     {}. Raise MemorySize, or aggregate to fewer groups",
                                    job.label,
                                    e.message()
                                ),
                            ));
                        };
                        let (a, b) = halves()?;
                        let (a, b) = futures::future::join(self.run(a), self.run(b)).await;
                        let mut answer = a?;
                        answer.add(b?);
                        answer.retried += retried + 1;
                        return Ok(answer);
                    }
                    e if e.kind().is_retryable() && attempt < self.options.max_attempts => {
                        retried += 1;
                        attempt += 1;
                        self.sleep.sleep(backoff(attempt)).await;
                    }
                    e => {
                        return Err(FunctionError::new(
                            e.kind(),
                            format!(
                                "a fan-out worker reading {} failed{}: {}",
                                job.label,
                                if attempt > 1 {
                                    format!(" (attempt {attempt})")
                                } else {
                                    String::new()
                                },
                                e.message()
                            ),
                        ));
                    }
                }
            }
        }
        .boxed()
    }

    /// One attempt of a job; a speculative duplicate joins it when it runs
    /// `speculate_after` times longer than the median finished job. Time waiting for room in
    /// the window does not count as running.
    async fn race(&self, job: &Job, attempt: u64) -> std::result::Result<Gathered, Miss> {
        let started = OnceLock::new();
        let first = self.invoke(job, attempt, Some(&started));
        if self.options.speculate_after <= 0.0 {
            let answer = first.await;
            return self.finished(answer, &started);
        }
        let duplicate = async {
            loop {
                self.sleep.sleep(Duration::from_millis(50)).await;
                if let (Some(median), Some(at)) = (self.median(), started.get())
                    && at.elapsed().as_secs_f64()
                        > median.as_secs_f64() * self.options.speculate_after
                {
                    break;
                }
            }
            let mut answer = self.invoke(job, attempt, None).await?;
            answer.speculated += 1;
            Ok::<_, Miss>(answer)
        };
        futures::pin_mut!(first, duplicate);
        let answer = match futures::future::select(first, duplicate).await {
            // The first answer wins; a later duplicate's is dropped with its future.
            Either::Left((Ok(a), _)) | Either::Right((Ok(a), _)) => Ok(a),
            // The task's own failure decides (a duplicate may not have started at all).
            Either::Left((Err(e), _)) => Err(e),
            Either::Right((Err(_), first)) => first.await,
        };
        self.finished(answer, &started)
    }

    fn finished<E>(
        &self,
        answer: std::result::Result<Gathered, E>,
        started: &OnceLock<Instant>,
    ) -> std::result::Result<Gathered, E> {
        if answer.is_ok()
            && let Some(at) = started.get()
            && let Ok(mut times) = self.times.lock()
        {
            times.push(at.elapsed());
        }
        answer
    }

    fn median(&self) -> Option<Duration> {
        let mut times = self.times.lock().ok()?.clone();
        if times.is_empty() {
            return None;
        }
        times.sort();
        Some(times[times.len() / 2])
    }

    /// One invocation of one job, once the window has room for it.
    async fn invoke(
        &self,
        job: &Job,
        attempt: u64,
        started: Option<&OnceLock<Instant>>,
    ) -> std::result::Result<Gathered, Miss> {
        let mut event = self.event.clone();
        event["fragment"] = job.fragment.to_json();
        let payload = serde_json::to_vec(&event).map_err(|e| {
            Miss::Failed(FunctionError::internal(format!(
                "encoding a worker's event: {e}"
            )))
        })?;
        while !self.window.try_enter(Instant::now()) {
            self.sleep.sleep(Duration::from_millis(50)).await;
        }
        let room = Room(Some(&self.window));
        if let Some(started) = started {
            let _ = started.set(Instant::now());
        }
        match self.invoker.invoke(payload).await {
            Ok(body) => {
                room.answered();
                read_answer(&body).map_err(Miss::Failed)
            }
            Err(Unanswered::NoConcurrency(e)) => {
                Err(Miss::Refused(room.refused(backoff(attempt + 1)), e))
            }
            Err(Unanswered::Failed(e)) => {
                room.answered();
                Err(Miss::Failed(e))
            }
        }
    }
}

/// Why an attempt brought no answer.
enum Miss {
    /// Lambda had no concurrency for it; what that costs.
    Refused(Refusal, FunctionError),
    Failed(FunctionError),
}

/// An invocation's room in the window; given back if its future is dropped (a race's loser).
struct Room<'a>(Option<&'a Window>);

impl Room<'_> {
    fn answered(mut self) {
        if let Some(w) = self.0.take() {
            w.answered();
        }
    }

    fn refused(mut self, backoff: Duration) -> Refusal {
        match self.0.take() {
            Some(w) => w.refused(Instant::now(), backoff),
            None => Refusal::Wait,
        }
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.left();
        }
    }
}

/// A worker's response as what it adds up to.
fn read_answer(body: &[u8]) -> Result<Gathered> {
    #[derive(serde::Deserialize)]
    struct Answer {
        partial: String,
        stats: AnswerStats,
    }
    #[derive(serde::Deserialize)]
    struct AnswerStats {
        s3_requests: u64,
        bytes_read: u64,
        sts_calls: u64,
        workers: Option<u64>,
        invocations: Option<u64>,
        tasks_retried: Option<u64>,
        tasks_speculated: Option<u64>,
        bytes_written: Option<u64>,
        files_written: Option<u64>,
        put_requests: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        FunctionError::internal(format!(
            "a fan-out worker answered with something other than a partial result ({e}); is \
             {} the same function and version as the coordinator?",
            super::invoke::FUNCTION_VARIABLE
        ))
    })?;
    Ok(Gathered {
        batches: partial::read(&answer.partial)?,
        workers: answer.stats.workers.unwrap_or(1),
        // This invocation, and those it made itself.
        invocations: 1 + answer.stats.invocations.unwrap_or(0),
        retried: answer.stats.tasks_retried.unwrap_or(0),
        speculated: answer.stats.tasks_speculated.unwrap_or(0),
        s3_requests: answer.stats.s3_requests,
        bytes_read: answer.stats.bytes_read,
        sts_calls: answer.stats.sts_calls,
        bytes_written: answer.stats.bytes_written.unwrap_or(0),
        files_written: answer.stats.files_written.unwrap_or(0),
        put_requests: answer.stats.put_requests.unwrap_or(0),
    })
}

/// `held` bytes of answers plus `answer`'s, or `ResourcesExhausted` past `memory` (which
/// a coordinator meets by running the query itself). Counted by each column's own slice:
/// batches read from one Arrow IPC answer share its buffers, whose whole capacity
/// `get_array_memory_size` would count once per batch.
fn hold(held: usize, answer: &Gathered, memory: usize) -> Result<usize> {
    let bytes: usize = answer
        .batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum();
    let held = held.saturating_add(bytes);
    if held > memory {
        return Err(FunctionError::new(
            ErrorKind::ResourcesExhausted,
            format!(
                "the workers' answers hold {held} bytes, above the query's memory ({memory} \
                 bytes, 60% of MemorySize): raise MemorySize, or lower max_workers"
            ),
        ));
    }
    Ok(held)
}

/// Exponential backoff with full jitter: up to 100 ms, 200 ms, 400 ms, ... capped at 5 s.
fn backoff(attempt: u64) -> Duration {
    let cap = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    let mut byte = [0u8; 2];
    let jitter = getrandom::fill(&mut byte).map_or(cap / 2, |()| {
        u64::from(u16::from_le_bytes(byte)) * cap / u64::from(u16::MAX)
    });
    Duration::from_millis(jitter.max(10))
}

/// `jobs` as at most `fan` invocations: themselves when they are few enough, else inner
/// nodes each holding a contiguous share of them (which do the same with their share).
pub fn tree(jobs: Vec<Job>, fan: usize) -> Vec<Job> {
    let fan = fan.max(2);
    if jobs.len() <= fan {
        return jobs;
    }
    let per = jobs.len().div_ceil(fan);
    jobs.chunks(per).map(|c| inner(c.to_vec())).collect()
}

/// An inner node over `children`.
pub fn inner(children: Vec<Job>) -> Job {
    if children.len() == 1 {
        return children.into_iter().next().expect("one child");
    }
    let label = match (children.first(), children.len()) {
        (Some(first), n) => format!("{} (and {} more shares)", first.label, n - 1),
        (None, _) => "nothing".into(),
    };
    let page_indexes = children[0].fragment.page_indexes;
    let fragments = children.iter().flat_map(|c| leaves(&c.fragment)).collect();
    let halves = {
        let children = children.clone();
        Arc::new(move || {
            let (a, b) = children.split_at(children.len() / 2);
            Ok((inner(a.to_vec()), inner(b.to_vec())))
        }) as Halves
    };
    Job {
        fragment: Fragment {
            plan: Vec::new(),
            page_indexes,
            children: fragments,
            part: None,
            versions: Default::default(),
        },
        label,
        halves: Some(halves),
    }
}

/// The leaf fragments under `fragment`.
fn leaves(fragment: &Fragment) -> Vec<Fragment> {
    if fragment.children.is_empty() {
        vec![fragment.clone()]
    } else {
        fragment.children.iter().flat_map(leaves).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PageIndexes;

    fn leaf(i: u8) -> Job {
        Job {
            fragment: Fragment {
                plan: vec![i],
                page_indexes: PageIndexes {
                    offset_index: false,
                    column_index: false,
                },
                children: Vec::new(),
                part: None,
                versions: Default::default(),
            },
            label: format!("f{i}"),
            halves: None,
        }
    }

    #[test]
    fn a_tree_starts_at_most_fan_invocations_at_each_level_and_keeps_order() {
        let jobs: Vec<Job> = (0..10).map(leaf).collect();
        assert_eq!(tree(jobs.clone(), 16).len(), 10);
        let top = tree(jobs, 3);
        assert_eq!(top.len(), 3);
        let order: Vec<u8> = top
            .iter()
            .flat_map(|j| leaves(&j.fragment))
            .map(|f| f.plan[0])
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert!(top.iter().all(|j| j.fragment.children.len() <= 4));
        let (a, b) = (top[0].halves.as_ref().unwrap())().unwrap();
        assert_eq!(leaves(&a.fragment).len() + leaves(&b.fragment).len(), 4);
    }

    #[test]
    fn answers_held_count_against_the_query_memory() {
        let batch = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("x", arrow::datatypes::DataType::Int64, false),
            ])),
            vec![Arc::new(arrow::array::Int64Array::from(vec![7; 1000]))],
        )
        .unwrap();
        let size = batch.column(0).to_data().get_slice_memory_size().unwrap();
        assert_eq!(size, 8000);
        let answer = Gathered {
            batches: vec![batch],
            ..Gathered::default()
        };
        assert_eq!(hold(0, &answer, 2 * size).unwrap(), size);
        assert_eq!(hold(size, &answer, 2 * size).unwrap(), 2 * size);
        // Slices of one buffer (as batches read from one IPC answer are) count their own
        // bytes, not the buffer's.
        let sliced = Gathered {
            batches: vec![
                answer.batches[0].slice(0, 10),
                answer.batches[0].slice(10, 10),
            ],
            ..Gathered::default()
        };
        assert_eq!(hold(0, &sliced, size).unwrap(), 160);
        let e = hold(2 * size, &answer, 2 * size).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourcesExhausted);
        assert!(super::super::falls_back(&e));
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 1..20 {
            assert!(backoff(attempt) <= Duration::from_millis(5_000));
        }
    }
}
