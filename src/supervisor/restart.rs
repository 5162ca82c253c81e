//! Restart policy, exponential backoff and crash-loop detection. Pure: time is passed in.

use super::cli::RestartPolicy;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RestartConfig {
    pub policy: RestartPolicy,
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
    pub max_restarts: Option<u32>,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do not restart; the child's exit ends the supervisor.
    Exit,
    /// Restart after this delay.
    Restart(Duration),
    /// Restarting would exceed `--max-restarts` within the window.
    CrashLoop,
}

#[derive(Debug)]
pub struct Restarts {
    cfg: RestartConfig,
    next_delay: Duration,
    recent: VecDeque<Instant>,
}

impl Restarts {
    pub fn new(cfg: RestartConfig) -> Restarts {
        Restarts {
            next_delay: cfg.initial,
            cfg,
            recent: VecDeque::new(),
        }
    }

    /// Decides what follows a child exit. `success` is exit status 0; `uptime` is how long
    /// that generation ran.
    pub fn on_exit(&mut self, success: bool, uptime: Duration, now: Instant) -> Decision {
        let restart = match self.cfg.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !restart {
            return Decision::Exit;
        }
        if let Some(max) = self.cfg.max_restarts {
            while self
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.cfg.window)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= max as usize {
                return Decision::CrashLoop;
            }
        }
        self.recent.push_back(now);
        // A generation that stayed up long enough proves the crash was not a loop.
        if uptime >= self.cfg.reset_after {
            self.next_delay = self.cfg.initial;
        }
        let delay = self.next_delay.min(self.cfg.max);
        self.next_delay = delay.saturating_mul(2).min(self.cfg.max);
        Decision::Restart(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policy: RestartPolicy, max_restarts: Option<u32>) -> RestartConfig {
        RestartConfig {
            policy,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            reset_after: Duration::from_secs(10),
            max_restarts,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut r = Restarts::new(cfg(RestartPolicy::Always, None));
        let t = Instant::now();
        let delays: Vec<_> = (0..6)
            .map(|i| r.on_exit(false, Duration::ZERO, t + Duration::from_secs(i)))
            .collect();
        let ms = |m| Decision::Restart(Duration::from_millis(m));
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }

    #[test]
    fn long_uptime_resets_backoff() {
        let mut r = Restarts::new(cfg(RestartPolicy::Always, None));
        let t = Instant::now();
        r.on_exit(false, Duration::ZERO, t);
        r.on_exit(false, Duration::ZERO, t);
        let d = r.on_exit(false, Duration::from_secs(10), t);
        assert_eq!(d, Decision::Restart(Duration::from_millis(100)));
    }

    #[test]
    fn policies() {
        let t = Instant::now();
        let mut never = Restarts::new(cfg(RestartPolicy::Never, None));
        assert_eq!(never.on_exit(false, Duration::ZERO, t), Decision::Exit);
        let mut onf = Restarts::new(cfg(RestartPolicy::OnFailure, None));
        assert_eq!(onf.on_exit(true, Duration::ZERO, t), Decision::Exit);
        assert!(matches!(
            onf.on_exit(false, Duration::ZERO, t),
            Decision::Restart(_)
        ));
        let mut always = Restarts::new(cfg(RestartPolicy::Always, None));
        assert!(matches!(
            always.on_exit(true, Duration::ZERO, t),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn crash_loop_counts_within_window() {
        let mut r = Restarts::new(cfg(RestartPolicy::Always, Some(2)));
        let t = Instant::now();
        assert!(matches!(
            r.on_exit(false, Duration::ZERO, t),
            Decision::Restart(_)
        ));
        assert!(matches!(
            r.on_exit(false, Duration::ZERO, t),
            Decision::Restart(_)
        ));
        assert_eq!(r.on_exit(false, Duration::ZERO, t), Decision::CrashLoop);
        // Once the old restarts fall out of the window, restarting is allowed again.
        let later = t + Duration::from_secs(61);
        assert!(matches!(
            r.on_exit(false, Duration::ZERO, later),
            Decision::Restart(_)
        ));
    }
}
