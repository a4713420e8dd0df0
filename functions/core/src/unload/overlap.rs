//! Parts uploaded while the source is read and encoded, in one task.
//!
//! An [`super::upload::Upload`] whose part is full starts its `UploadPart` and goes on
//! encoding; the request is a shared future, registered here ([`Overlap::start`]) and polled
//! by the statement's [`Driver`] beside the source ([`Driver::beside`]), the way the engine
//! drives its prefetched reads: no `tokio::spawn`, so the same code overlaps uploads with
//! reads natively and under WASI. The upload keeps its own handle and waits on it when it
//! has too many parts under way and before it completes, so a part that nobody drove is
//! sent then: overlap is a matter of speed, never of correctness.

use futures::channel::mpsc;
use futures::future::{BoxFuture, Either, Shared};
use futures::{FutureExt, StreamExt};

/// One part under way: its ETag, or why S3 refused it.
pub type Sent = Shared<BoxFuture<'static, Result<Option<String>, crate::aws_error::AwsFailure>>>;

/// Where an upload registers the parts it starts (clones share the statement's [`Driver`]).
#[derive(Clone)]
pub struct Overlap {
    to: mpsc::UnboundedSender<Sent>,
}

/// Polls a statement's parts under way while its source runs.
pub struct Driver {
    from: mpsc::UnboundedReceiver<Sent>,
}

/// A statement's [`Overlap`] and the [`Driver`] of what it starts.
pub fn channel() -> (Overlap, Driver) {
    let (to, from) = mpsc::unbounded();
    (Overlap { to }, Driver { from })
}

impl Overlap {
    /// For an upload with nothing to overlap (the manifest): its parts go out when awaited.
    pub fn none() -> Self {
        channel().0
    }

    /// Hands `part` to the driver (if there is one still running).
    pub fn start(&self, part: &Sent) {
        let _ = self.to.unbounded_send(part.clone());
    }
}

impl Driver {
    /// Runs `work`, polling every part started meanwhile; parts still under way when `work`
    /// ends are left to the uploads that wait on them.
    pub async fn beside<T>(self, work: impl Future<Output = T>) -> T {
        let parts = self.from.for_each_concurrent(None, |part| part.map(drop));
        futures::pin_mut!(work, parts);
        match futures::future::select(work, parts).await {
            Either::Left((done, _)) => done,
            Either::Right(((), work)) => work.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A part started during `work` is sent while `work` waits on something else.
    #[test]
    fn a_started_part_is_sent_while_the_work_waits() {
        let (overlap, driver) = channel();
        let sent = Arc::new(AtomicBool::new(false));
        let (go, wait) = futures::channel::oneshot::channel::<()>();
        let flag = Arc::clone(&sent);
        let part: Sent = async move {
            flag.store(true, Ordering::SeqCst);
            let _ = go.send(());
            Ok(Some("etag".to_string()))
        }
        .boxed()
        .shared();
        let work = async {
            overlap.start(&part);
            // The work waits on what only the part's being sent can give: the driver sends it.
            wait.await.expect("the part ran");
            sent.load(Ordering::SeqCst)
        };
        assert!(futures::executor::block_on(driver.beside(work)));
        // The upload's own handle has the answer without sending again.
        let etag = futures::executor::block_on(part).unwrap();
        assert_eq!(etag.as_deref(), Some("etag"));
    }

    /// Without a driver, a part is sent when its upload waits on it.
    #[test]
    fn without_a_driver_a_part_goes_out_when_awaited() {
        let overlap = Overlap::none();
        let part: Sent = async { Ok(Some("e".to_string())) }.boxed().shared();
        overlap.start(&part);
        assert_eq!(
            futures::executor::block_on(part).unwrap().as_deref(),
            Some("e")
        );
    }
}
