//! The one rule for publishing staged deletions around a commit, used by
//! both backends' `run`.
//!
//! A job is published to [`Hidden`] just *before* its transaction commits,
//! so no read that starts after the commit can see the documents it hides.
//! If that commit fails, or a retry runs the command again, the attempt's
//! jobs never existed and are retired. Once the commit has succeeded, the
//! reaper is signalled ([`Hidden::committed`]), never before.

use std::sync::{Arc, Mutex};

use bson::oid::ObjectId;

use super::Hidden;
use crate::model::DeletionJobDoc;

/// The jobs one command's transaction published, across its attempts.
pub struct Staging {
    hidden: Arc<Hidden>,
    /// Jobs published by the latest attempt.
    published: Mutex<Vec<ObjectId>>,
}

impl Staging {
    /// Staging for one command over `hidden`.
    pub fn new(hidden: &Arc<Hidden>) -> Self {
        Staging { hidden: Arc::clone(hidden), published: Mutex::new(Vec::new()) }
    }

    /// Starts an attempt: what an earlier attempt published did not commit.
    pub fn begin_attempt(&self) {
        if let Ok(mut stale) = self.published.lock() {
            for id in stale.drain(..) {
                self.hidden.retire(&id);
            }
        }
    }

    /// Publishes the attempt's `jobs`; call just before committing.
    pub fn publish(&self, jobs: &[DeletionJobDoc]) {
        let Ok(mut published) = self.published.lock() else { return };
        for job in jobs {
            self.hidden.publish(job);
            published.push(job.id);
        }
    }

    /// Ends the command: on a commit the reaper may start on its jobs; on a
    /// failure they are retired.
    pub fn finish(&self, committed: bool) {
        let Ok(mut published) = self.published.lock() else { return };
        if published.is_empty() {
            return;
        }
        if committed {
            self.hidden.committed();
        } else {
            for id in published.drain(..) {
                self.hidden.retire(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeletionKind;

    fn job() -> DeletionJobDoc {
        super::super::tests::job(DeletionKind::User, ObjectId::new(), vec![crate::model::PostId::new()], vec![])
    }

    /// A failed commit retires what it published; a retried attempt retires the previous attempt's jobs.
    #[test]
    fn failed_and_retried_attempts_leave_nothing_hidden() {
        let hidden = Arc::new(Hidden::default());
        let staging = Staging::new(&hidden);
        staging.begin_attempt();
        staging.publish(&[job()]);
        assert_eq!(hidden.len(), 1, "published before the commit");
        staging.begin_attempt();
        assert_eq!(hidden.len(), 0, "the first attempt did not commit");
        staging.publish(&[job()]);
        staging.finish(false);
        assert!(hidden.is_empty(), "the failed commit's job is retired");
    }

    /// A committed attempt keeps its jobs published and signals the reaper.
    #[tokio::test]
    async fn a_commit_keeps_its_jobs_and_signals() {
        let hidden = Arc::new(Hidden::default());
        let staging = Staging::new(&hidden);
        let signalled = hidden.job_committed();
        staging.begin_attempt();
        staging.publish(&[job()]);
        staging.finish(true);
        assert_eq!(hidden.len(), 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), signalled).await.expect("the reaper is signalled");
    }
}
