//! A shard-local wake-up for tasks waiting on a condition of shard state (a session's queue
//! draining): waiters check the condition, then await [`Notify::notified`]; whoever changes
//! the state calls [`Notify::notify_all`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting at the time of the call. `!Send`.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("waiters", &self.wakers.borrow().len())
            .finish()
    }
}

impl Notify {
    /// Wakes every current waiter. Cheap when nobody waits.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Completes at the next `notify_all` after this call. A waiter checks its condition
    /// first, then awaits this, then checks again (there is no await between the check and
    /// the registration, so no wake-up is missed on one thread).
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.generation.get(),
            registered: false,
        }
    }

    pub fn waiters(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// Future of [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
    registered: bool,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if self.registered {
            // Polled again without a notification (a combinator's spurious poll): keep
            // one registration, with the newest waker.
            if let Some(w) = wakers.iter_mut().find(|w| w.will_wake(cx.waker())) {
                w.clone_from(cx.waker());
                return Poll::Pending;
            }
        }
        wakers.push(cx.waker().clone());
        drop(wakers);
        self.registered = true;
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn notified_completes_only_after_a_later_notify() {
        let n = Notify::default();
        n.notify_all(); // before: does not count
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(n.notified());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        assert!(f.as_mut().poll(&mut cx).is_pending(), "spurious poll");
        assert_eq!(n.waiters(), 1, "one registration per waiter");
        n.notify_all();
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(f.as_mut().poll(&mut cx).is_ready());
        assert_eq!(n.waiters(), 0);
    }
}
