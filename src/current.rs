//! What a reload replaces: a value each part reads whole when it starts a
//! piece of work, so that a deployment keeps the config it started with
//! while the next one gets the new file.

use std::sync::Arc;

use tokio::sync::watch;

/// The value in force now, for the parts that read it.
pub struct Current<T>(watch::Receiver<Arc<T>>);

// Not derived: a derive would ask `T: Clone`, and the value is never cloned.
impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current(self.0.clone())
    }
}

impl<T> Current<T> {
    pub fn get(&self) -> Arc<T> {
        self.0.borrow().clone()
    }
}

/// The daemon's side: puts a new value in force.
pub struct Publisher<T>(watch::Sender<Arc<T>>);

impl<T> Publisher<T> {
    pub fn publish(&self, value: Arc<T>) {
        self.0.send_replace(value);
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        self.0.borrow().clone()
    }
}

pub fn current<T>(value: Arc<T>) -> (Publisher<T>, Current<T>) {
    let (tx, rx) = watch::channel(value);
    (Publisher(tx), Current(rx))
}

impl<T> Current<T> {
    /// A value that never changes (tools and tests that do not reload).
    pub fn fixed(value: Arc<T>) -> Current<T> {
        current(value).1
    }
}
