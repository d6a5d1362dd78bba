//! The in-memory order of ready jobs: lanes (priority first), round-robin between users within
//! a lane, FIFO within a user. Rebuilt from the stored records on open, so dequeueing never scans
//! the store (no tombstone slowdown, CRATES.md trap 2).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::domain::{JobId, Lane, UserId};

#[derive(Default)]
struct LaneQueue {
    /// Users with ready jobs, in turn order.
    ring: VecDeque<UserId>,
    per_user: HashMap<UserId, VecDeque<JobId>>,
    len: usize,
}

impl LaneQueue {
    fn push(&mut self, user: UserId, job: JobId) {
        let jobs = self.per_user.entry(user).or_default();
        if jobs.is_empty() {
            self.ring.push_back(user);
        }
        // Job ids sort by creation time: a retried job goes back to its place in line.
        let at = jobs.partition_point(|j| *j < job);
        jobs.insert(at, job);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<JobId> {
        let user = self.ring.pop_front()?;
        let jobs = self.per_user.get_mut(&user)?;
        let job = jobs.pop_front()?;
        self.len -= 1;
        if jobs.is_empty() {
            self.per_user.remove(&user);
        } else {
            self.ring.push_back(user);
        }
        Some(job)
    }

    fn remove(&mut self, user: UserId, job: JobId) -> bool {
        let Some(jobs) = self.per_user.get_mut(&user) else {
            return false;
        };
        let Some(at) = jobs.iter().position(|j| *j == job) else {
            return false;
        };
        jobs.remove(at);
        self.len -= 1;
        if jobs.is_empty() {
            self.per_user.remove(&user);
            self.ring.retain(|u| *u != user);
        }
        true
    }

    /// How many jobs of this lane are dispensed before `job`.
    fn position(&self, user: UserId, job: JobId) -> Option<usize> {
        let jobs = self.per_user.get(&user)?;
        let k = jobs.iter().position(|j| *j == job)?;
        let mut ahead = 0;
        let mut before_me_in_ring = true;
        for u in &self.ring {
            if *u == user {
                before_me_in_ring = false;
                continue;
            }
            let n = self.per_user.get(u).map_or(0, VecDeque::len);
            // Each full round before mine gives one job per user; in my round, users ahead
            // of me in the ring go first.
            ahead += n.min(k) + usize::from(before_me_in_ring && n > k);
        }
        Some(ahead + k)
    }
}

/// Ready and delayed jobs. Leased jobs are not here.
#[derive(Default)]
pub struct Sched {
    priority: LaneQueue,
    normal: LaneQueue,
    /// Retries waiting for their backoff: (not before, job, user, lane).
    delayed: BTreeSet<(i64, JobId, UserId, LaneKey)>,
}

/// A sortable stand-in for `Lane` inside the delayed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LaneKey(bool);

impl From<Lane> for LaneKey {
    fn from(l: Lane) -> Self {
        LaneKey(l == Lane::Priority)
    }
}

impl Sched {
    fn lane(&mut self, lane: Lane) -> &mut LaneQueue {
        match lane {
            Lane::Priority => &mut self.priority,
            Lane::Normal => &mut self.normal,
        }
    }

    /// Adds a job that may run from `not_before_ms` on.
    pub fn push(&mut self, job: JobId, user: UserId, lane: Lane, not_before_ms: i64, now_ms: i64) {
        if not_before_ms > now_ms {
            self.delayed.insert((not_before_ms, job, user, lane.into()));
        } else {
            self.lane(lane).push(user, job);
        }
    }

    /// Moves retries whose backoff is over into their lanes.
    pub fn promote(&mut self, now_ms: i64) {
        while let Some(&(at, job, user, lane)) = self.delayed.first() {
            if at > now_ms {
                break;
            }
            self.delayed.pop_first();
            let lane = if lane.0 { Lane::Priority } else { Lane::Normal };
            self.lane(lane).push(user, job);
        }
    }

    /// The next job to run: the priority lane first, then round-robin over users.
    pub fn pop(&mut self, now_ms: i64) -> Option<JobId> {
        self.promote(now_ms);
        self.priority.pop().or_else(|| self.normal.pop())
    }

    pub fn remove(&mut self, job: JobId, user: UserId, lane: Lane) -> bool {
        if self.lane(lane).remove(user, job) {
            return true;
        }
        let before = self.delayed.len();
        self.delayed.retain(|(_, j, _, _)| *j != job);
        before != self.delayed.len()
    }

    /// 0 = next to run. Delayed retries count after everything ready.
    pub fn position(&self, job: JobId, user: UserId, lane: Lane) -> Option<usize> {
        let ready = self.priority.len + self.normal.len;
        match lane {
            Lane::Priority => self.priority.position(user, job),
            Lane::Normal => self
                .normal
                .position(user, job)
                .map(|p| p + self.priority.len),
        }
        .or_else(|| {
            self.delayed
                .iter()
                .position(|(_, j, _, _)| *j == job)
                .map(|p| ready + p)
        })
    }

    pub fn ready(&self, lane: Lane) -> usize {
        match lane {
            Lane::Priority => self.priority.len,
            Lane::Normal => self.normal.len,
        }
    }

    pub fn delayed(&self) -> usize {
        self.delayed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<JobId> {
        (0..n).map(|i| JobId::at(1_000 + i as u64)).collect()
    }

    #[test]
    fn round_robin_between_users_fifo_within() {
        let mut s = Sched::default();
        let j = ids(6);
        let (a, b, c) = (UserId::new(1), UserId::new(2), UserId::new(3));
        // User a floods first, then b and c arrive.
        for job in &j[0..4] {
            s.push(*job, a, Lane::Normal, 0, 0);
        }
        s.push(j[4], b, Lane::Normal, 0, 0);
        s.push(j[5], c, Lane::Normal, 0, 0);
        assert_eq!(s.position(j[4], b, Lane::Normal), Some(1));
        assert_eq!(s.position(j[5], c, Lane::Normal), Some(2));
        assert_eq!(s.position(j[3], a, Lane::Normal), Some(5));
        let order: Vec<_> = std::iter::from_fn(|| s.pop(0)).collect();
        assert_eq!(order, vec![j[0], j[4], j[5], j[1], j[2], j[3]]);
    }

    #[test]
    fn priority_lane_first_and_positions_match_pop_order() {
        let mut s = Sched::default();
        let j = ids(5);
        let (a, b) = (UserId::new(1), UserId::new(2));
        s.push(j[0], a, Lane::Normal, 0, 0);
        s.push(j[1], a, Lane::Normal, 0, 0);
        s.push(j[2], b, Lane::Normal, 0, 0);
        s.push(j[3], b, Lane::Priority, 0, 0);
        s.push(j[4], a, Lane::Priority, 0, 0);
        let lanes = [
            Lane::Normal,
            Lane::Normal,
            Lane::Normal,
            Lane::Priority,
            Lane::Priority,
        ];
        let users = [a, a, b, b, a];
        let mut predicted: Vec<(usize, JobId)> = (0..5)
            .map(|i| (s.position(j[i], users[i], lanes[i]).unwrap(), j[i]))
            .collect();
        predicted.sort();
        let order: Vec<_> = std::iter::from_fn(|| s.pop(0)).collect();
        assert_eq!(
            order,
            predicted.into_iter().map(|(_, j)| j).collect::<Vec<_>>()
        );
        assert_eq!(order[0], j[3]);
    }

    #[test]
    fn delayed_jobs_wait_for_their_time_then_keep_their_place() {
        let mut s = Sched::default();
        let j = ids(2);
        let a = UserId::new(1);
        s.push(j[1], a, Lane::Normal, 0, 0);
        s.push(j[0], a, Lane::Normal, 500, 0);
        assert_eq!(s.delayed(), 1);
        assert_eq!(s.pop(100), Some(j[1]));
        assert_eq!(s.pop(100), None);
        assert_eq!(s.pop(500), Some(j[0]));
    }

    #[test]
    fn removed_jobs_are_gone_from_the_ring() {
        let mut s = Sched::default();
        let j = ids(2);
        let (a, b) = (UserId::new(1), UserId::new(2));
        s.push(j[0], a, Lane::Normal, 0, 0);
        s.push(j[1], b, Lane::Normal, 0, 0);
        assert!(s.remove(j[0], a, Lane::Normal));
        assert!(!s.remove(j[0], a, Lane::Normal));
        assert_eq!(s.position(j[1], b, Lane::Normal), Some(0));
        assert_eq!(s.pop(0), Some(j[1]));
        assert_eq!(s.pop(0), None);
    }
}
